"""Heads fitted in NumPy: Keras' own update rules, stacked heads that equal lone ones, early stopping."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from headstart.kernels.engine.head_fit import Head, fit_heads
from headstart.kernels.engine.standardization import FeatureScale
from headstart.kernels.errors import Cancelled
from headstart.kernels.schemas import TrainingConfig


def clusters(count: int, seed: int, dim: int = 6, labels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, labels, count)
    x = np.eye(labels, dim)[y] * 2 + rng.normal(0, 1.0, (count, dim)) * rng.uniform(0.1, 3, dim)
    return x.astype(np.float32), y


def keras_head(train, val, config: TrainingConfig, n_labels: int) -> tuple[Head, list[dict]]:
    """The same head trained by Keras' fit on the standardized features, one full batch per epoch."""
    scale = FeatureScale.of(train[0])
    model = keras.Sequential([keras.Input((train[0].shape[1],)), keras.layers.Dense(n_labels, "softmax")])
    model.layers[-1].set_weights([np.zeros((train[0].shape[1], n_labels)), np.zeros(n_labels)])
    optimizer = keras.optimizers.get(
        {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    history = model.fit(
        scale.apply(train[0]),
        np.eye(n_labels)[train[1]],
        batch_size=len(train[1]),
        epochs=config.epochs,
        validation_data=(scale.apply(val[0]), np.eye(n_labels)[val[1]]),
        shuffle=False,
        verbose=0,
    )
    kernel, bias = scale.fold_weights(*model.layers[-1].get_weights())
    epochs = [
        dict(zip(history.history, values, strict=True))
        for values in zip(*history.history.values(), strict=True)
    ]
    return Head(kernel, bias), epochs


@pytest.mark.parametrize(
    ("optimizer", "rate", "smoothing"),
    [("adam", 0.05, 0.0), ("adamw", 0.05, 0.1), ("sgd", 0.5, 0.0), ("rmsprop", 0.01, 0.2)],
)
def test_each_optimizer_takes_keras_steps(optimizer: str, rate: float, smoothing: float) -> None:
    train, val = clusters(120, 0), clusters(40, 1)
    config = TrainingConfig(
        optimizer=optimizer,
        learning_rate=rate,
        label_smoothing=smoothing,
        epochs=6,
        batch_size=len(train[1]),
        early_stopping_patience=None,
    )
    (ours,) = fit_heads(train, val, [config], 3)
    theirs, history = keras_head(train, val, config, 3)
    assert ours.head.kernel == pytest.approx(theirs.kernel, rel=1e-3, abs=1e-4)
    assert ours.head.bias == pytest.approx(theirs.bias, rel=1e-3, abs=1e-4)
    assert [e.loss for e in ours.epochs] == pytest.approx([h["loss"] for h in history], rel=1e-4)
    assert [e.val_loss for e in ours.epochs] == pytest.approx([h["val_loss"] for h in history], rel=1e-4)
    assert [e.val_accuracy for e in ours.epochs] == pytest.approx([h["val_accuracy"] for h in history])


def test_stacked_heads_equal_heads_fitted_alone() -> None:
    train, val = clusters(300, 2), clusters(60, 3)
    configs = [
        TrainingConfig(learning_rate=rate, epochs=epochs, label_smoothing=smoothing, batch_size=16)
        for rate, epochs, smoothing in [(1e-3, 4, 0.0), (1e-2, 6, 0.1), (0.1, 3, 0.0)]
    ]
    heard: list[list[tuple[int, int]]] = []
    together = fit_heads(
        train, val, configs, 3, on_epochs=lambda reports: heard.append([(i, e.epoch) for i, e in reports])
    )
    assert [len(fit.epochs) for fit in together] == [4, 6, 3]
    # One report an epoch, for the heads that ran it: all three, then the two with more epochs...
    assert [sorted(i for i, _ in reports) for reports in heard] == [[0, 1, 2]] * 3 + [[0, 1], [1], [1]]
    assert all(len({e for _, e in reports}) == 1 for reports in heard)
    for config, fit in zip(configs, together, strict=True):
        (alone,) = fit_heads(train, val, [config], 3)
        assert fit.head.kernel == pytest.approx(alone.head.kernel, rel=1e-4, abs=1e-5)
        assert [e.val_loss for e in fit.epochs] == pytest.approx([e.val_loss for e in alone.epochs])


def test_heads_with_other_batch_sizes_or_optimizers_train_in_their_own_stacks() -> None:
    train, val = clusters(200, 4), clusters(50, 5)
    configs = [
        TrainingConfig(epochs=3, batch_size=8),
        TrainingConfig(epochs=3, batch_size=64),
        TrainingConfig(epochs=3, optimizer="sgd", learning_rate=0.1),
    ]
    together = fit_heads(train, val, configs, 3)
    for config, fit in zip(configs, together, strict=True):
        (alone,) = fit_heads(train, val, [config], 3)
        assert fit.config == config
        assert fit.head.kernel == pytest.approx(alone.head.kernel, rel=1e-4, abs=1e-5)


def test_an_early_stopped_head_takes_back_its_best_epoch_while_the_rest_go_on() -> None:
    train, val = clusters(300, 6), clusters(60, 7)
    jumpy = TrainingConfig(optimizer="sgd", learning_rate=10.0, epochs=15, early_stopping_patience=2)
    steady = TrainingConfig(optimizer="sgd", learning_rate=0.01, epochs=15, early_stopping_patience=2)
    stopped, ran = fit_heads(train, val, [jumpy, steady], 3)
    assert len(stopped.epochs) < 15 and len(ran.epochs) == 15
    best = min(stopped.epochs, key=lambda e: e.val_loss or np.inf)
    logits = val[0].astype(np.float64) @ stopped.head.kernel + stopped.head.bias
    assert float((logits.argmax(-1) == val[1]).mean()) == pytest.approx(best.val_accuracy)


def test_a_stop_request_raises_cancelled_after_a_batch() -> None:
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(Cancelled, match="after 0 finished epochs"):
        fit_heads(clusters(100, 8), None, [TrainingConfig(batch_size=10)], 3, should_stop=should_stop)
    assert len(asked) == 3


def plain_adam(train, config: TrainingConfig, n_labels: int) -> np.ndarray:
    """Keras' Adam written out in float64, step by step, on the batches a Stack sees: the reference
    for heads whose moments the Stack keeps rescaled."""
    scale = FeatureScale.of(train[0])
    rows = np.hstack([scale.apply(train[0]).astype(np.float64), np.ones((len(train[1]), 1))])
    weights = np.zeros((rows.shape[1], n_labels))
    m, v = np.zeros_like(weights), np.zeros_like(weights)
    rng, step = np.random.default_rng(config.seed), 0
    for _ in range(config.epochs):
        order = rng.permutation(len(rows))
        for begin in range(0, len(order), config.batch_size):
            batch = order[begin : begin + config.batch_size]
            logits = rows[batch] @ weights
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            g = rows[batch].T @ (p - np.eye(n_labels)[train[1][batch]]) / len(batch)
            step += 1
            m += (g - m) * 0.1
            v += (g * g - v) * 0.001
            alpha = config.learning_rate * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
            weights -= m * alpha / (np.sqrt(v) + 1e-7)
    return scale.fold_weights(weights[:-1], weights[-1])[0]


def test_adam_over_many_steps_matches_the_update_written_out() -> None:
    """400 steps: the Stack brings its rescaled moments back to scale several times on the way."""
    train = clusters(160, 10)
    config = TrainingConfig(epochs=10, batch_size=4, learning_rate=0.01, early_stopping_patience=None)
    (ours,) = fit_heads(train, None, [config], 3)
    assert ours.head.kernel == pytest.approx(plain_adam(train, config, 3), rel=1e-3, abs=1e-4)


def test_blas_runs_on_one_thread_during_a_fit_and_as_before_after() -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

    before, during = blas_threads(), []
    config = TrainingConfig(epochs=2)
    fit_heads(clusters(100, 9), None, [config], 3, on_epochs=lambda _: during.append(blas_threads()))
    assert during == [[1], [1]]
    assert blas_threads() == before
