"""The training engine: which head to keep, and both ways of training a head on features."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from headstart.kernels.engine import head_fit
from headstart.kernels.engine.head_plan import plan_head
from headstart.kernels.engine.training import fit_head
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import TrainingConfig


def test_plan_keeps_a_head_with_the_same_label_set() -> None:
    same = plan_head("classifier", ["b", "a", "c"], ["a", "b", "c"])
    assert same.keep and same.order == (1, 0, 2)
    assert not plan_head("classifier", ["a", "b"], ["a", "b", "c"]).keep
    assert not plan_head("classifier", ["a", "b", "c", "d"], ["a", "b", "c"]).keep
    assert not plan_head("feature_vector", None, ["a", "b"]).keep
    with pytest.raises(Invalid):
        plan_head("classifier", ["a", "a", "b"], ["a", "b"])


def separable(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three clusters in 8 dimensions, stored as float16 like the feature cache."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    centres = np.eye(3, 8) * 4
    return (centres[labels] + rng.normal(0, 0.5, (count, 8))).astype(np.float16), labels


@pytest.mark.parametrize("streamed", [False, True])
def test_a_head_learns_from_features_in_memory_or_streamed(monkeypatch, streamed: bool) -> None:
    from headstart.kernels.engine.surgery import head_from_features

    if streamed:
        monkeypatch.setattr(head_fit, "IN_MEMORY_FEATURES_BYTES", 0)
    head = head_from_features(8, 3)
    seen = []
    config = TrainingConfig(epochs=5, batch_size=16, learning_rate=0.05)
    reports = fit_head(head, separable(300, 0), separable(60, 1), config, on_epoch=seen.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5] and seen == reports
    assert reports[-1].val_accuracy > 0.9
    assert reports[-1].loss < reports[0].loss


def test_categorical_loss_takes_one_hot_targets() -> None:
    from headstart.kernels.engine.surgery import head_from_features

    config = TrainingConfig(epochs=3, learning_rate=0.05, loss="categorical_crossentropy")
    reports = fit_head(head_from_features(8, 3), separable(200, 2), None, config)
    assert reports[-1].accuracy > 0.8 and reports[-1].val_loss is None


def badly_scaled(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The clusters above, each feature on its own scale (1e-10 to 6), with a dead and a shifted one.

    A Dense head trained by Adam on such raw features barely moves on the tiny ones; the standard
    linear probe standardizes first, and so does fit_head.
    """
    features, labels = separable(count, seed)
    scales = np.array([1e-10, 1e-4, 6.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    x = np.maximum(features.astype(np.float64), 0) * scales
    x[:, 3] = 0.0  # a feature that never fires
    x[:, 4] += 1000.0  # a large offset, far from zero
    return x.astype(np.float32), labels


def raw_accuracy(head: object, data: tuple[np.ndarray, np.ndarray]) -> float:
    probabilities = keras.ops.convert_to_numpy(head(data[0]))
    return float((probabilities.argmax(-1) == data[1]).mean())


def test_a_head_learns_badly_scaled_features_and_ends_a_plain_dense_on_raw_ones() -> None:
    from headstart.kernels.engine.surgery import head_from_features

    head = head_from_features(8, 3)
    config = TrainingConfig(epochs=5, early_stopping_patience=None)
    reports = fit_head(head, badly_scaled(300, 0), badly_scaled(60, 1), config)
    assert reports[-1].val_accuracy > 0.9
    # The scaling is folded in: the head alone, on raw features, scores what training reported.
    assert [type(layer).__name__ for layer in head.layers] == ["Dense"]
    assert raw_accuracy(head, badly_scaled(60, 1)) == pytest.approx(reports[-1].val_accuracy)
    kernel, _ = head.layers[-1].get_weights()
    assert not kernel[3].any()  # the dead feature keeps the zero weight it started from


def test_a_kept_head_resumes_from_the_function_it_had() -> None:
    from headstart.kernels.engine.surgery import head_from_features

    train, val = badly_scaled(300, 0), badly_scaled(60, 1)
    first = head_from_features(8, 3)
    fit_head(first, train, val, TrainingConfig(epochs=3))
    before = keras.ops.convert_to_numpy(first(val[0]))
    # Another training set, so another scale: the kept head is unfolded with it, not with the first.
    again = head_from_features(8, 3, first.layers[-1])
    config = TrainingConfig(epochs=1, optimizer="sgd", learning_rate=1e-9, early_stopping_patience=None)
    fit_head(again, badly_scaled(200, 5), val, config)
    assert keras.ops.convert_to_numpy(again(val[0])) == pytest.approx(before, abs=1e-4)


def test_early_stopping_keeps_the_best_epochs_weights() -> None:
    from headstart.kernels.engine.surgery import head_from_features

    head = head_from_features(8, 3)
    val = badly_scaled(60, 1)
    # A rate this high makes the val loss jump about; the weights kept are the best epoch's.
    config = TrainingConfig(epochs=12, optimizer="sgd", learning_rate=5.0, early_stopping_patience=3)
    reports = fit_head(head, badly_scaled(300, 0), val, config)
    best = min(reports, key=lambda r: r.val_loss)
    assert raw_accuracy(head, val) == pytest.approx(best.val_accuracy)
