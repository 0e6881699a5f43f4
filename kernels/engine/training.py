"""Transfer training (DESIGN.md rule 2): which head to train, and the two ways to train it.

With a frozen body, only the head trains, on cached features (`fit_head`, in NumPy: head_fit.py).
With unfrozen body layers, the whole Sequential trains in Keras on the uint8 shards, batch by batch
(`fit_model`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from headstart.kernels.engine.head_fit import Head, fit_heads
from headstart.kernels.errors import Cancelled
from headstart.kernels.schemas import EpochPublic, TrainingConfig

Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def reorder_head(head: keras.layers.Dense, order: Sequence[int]) -> None:
    """Permute a Dense head's output columns in place, so they follow the dataset's label order."""
    kernel, bias = head.get_weights()
    head.set_weights([kernel[:, list(order)], bias[list(order)]])


class EpochPublicer(keras.callbacks.Callback):
    """Passes each finished epoch's figures to `on_epoch` as it ends, and stops at a batch boundary.

    `should_stop()` is asked after every batch; once it answers true the fit ends after that batch,
    the unfinished epoch is not reported, and the fit raises Cancelled.
    """

    def __init__(
        self,
        on_epoch: Callable[[EpochPublic], None] | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.reports: list[EpochPublic] = []
        self.stopped = False
        self._started = 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop is not None and not self.stopped and self.should_stop():
            self.stopped = True
            self.model.stop_training = True

    def raise_if_stopped(self) -> None:
        if self.stopped:
            raise Cancelled(f"training stopped after {len(self.reports)} finished epochs")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.stopped:
            return
        logs = logs or {}

        def figure(key: str) -> float | None:
            value = logs.get(key)
            return None if value is None else float(value)

        report = EpochPublic(
            epoch=epoch + 1,
            loss=float(logs["loss"]),
            accuracy=float(logs.get("accuracy", logs.get("sparse_categorical_accuracy", math.nan))),
            val_loss=figure("val_loss"),
            val_accuracy=figure("val_accuracy"),
            seconds=time.perf_counter() - self._started,
        )
        self.reports.append(report)
        if self.on_epoch is not None:
            self.on_epoch(report)


def _compile(model: keras.Model, config: TrainingConfig) -> None:
    optimizer = keras.optimizers.get(
        {"class_name": config.optimizer, "config": {"learning_rate": config.learning_rate}}
    )
    loss: str | keras.losses.Loss = config.loss
    if config.label_smoothing:
        # Keras smooths only the categorical loss, so smoothed targets are always one-hot.
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def _targets(labels: np.ndarray, n_labels: int, config: TrainingConfig) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int32)
    if config.loss == "categorical_crossentropy" or config.label_smoothing:
        return np.eye(n_labels, dtype=np.float32)[labels]
    return labels


def _callbacks(config: TrainingConfig, reporter: EpochPublicer, has_val: bool) -> list:
    callbacks: list = [reporter]
    if config.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss" if has_val else "loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return callbacks


def fit_head(
    head_model: keras.Sequential,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    config: TrainingConfig,
    *,
    on_epoch: Callable[[EpochPublic], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EpochPublic]:
    """Train a head-only model (features in, probabilities out) on cached features, in place.

    The fit runs in NumPy (head_fit.py), from the head's current weights; `head_model` ends as a
    plain Dense on raw features.
    """
    dense = head_model.layers[-1]
    kernel, bias = dense.get_weights()
    (fit,) = fit_heads(
        train,
        val,
        [config],
        int(head_model.output_shape[-1]),
        start=Head(kernel, bias),
        on_epochs=None if on_epoch is None else (lambda reports: on_epoch(reports[0][1])),
        should_stop=should_stop,
    )
    dense.set_weights([fit.head.kernel.astype(kernel.dtype), fit.head.bias.astype(bias.dtype)])
    return fit.epochs


class Batches(keras.utils.PyDataset):
    """Batches read by index from memory-mapped image shards, reshuffled every epoch."""

    def __init__(
        self, read: Reader, count: int, n_labels: int, config: TrainingConfig, *, shuffle: bool
    ) -> None:
        super().__init__()
        self.read = read
        self.batch_size = config.batch_size
        self.n_labels = n_labels
        self.config = config
        self.shuffle = shuffle
        self.rng = np.random.default_rng(config.seed)
        self.order = np.arange(count)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # Sorted indices read the memory map front to back, which the page cache rewards.
        picked = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        inputs, labels = self.read(picked)
        return inputs, _targets(labels, self.n_labels, self.config)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def fit_model(
    model: keras.Sequential,
    train: object,
    val: object | None,
    config: TrainingConfig,
    *,
    on_epoch: Callable[[EpochPublic], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EpochPublic]:
    """Train a whole Sequential (some body layers unfrozen) on a dataset's image shards."""
    keras.utils.set_random_seed(config.seed)
    n_labels = int(model.output_shape[-1])
    _compile(model, config)
    batches = Batches(train.read, len(train), n_labels, config, shuffle=True)  # type: ignore[attr-defined, arg-type]
    validation = None
    if val is not None and len(val):  # type: ignore[arg-type]
        validation = Batches(val.read, len(val), n_labels, config, shuffle=False)  # type: ignore[attr-defined, arg-type]
    reporter = EpochPublicer(on_epoch, should_stop)
    model.fit(
        batches,
        epochs=config.epochs,
        validation_data=validation,
        verbose=0,
        callbacks=_callbacks(config, reporter, validation is not None),
    )
    reporter.raise_if_stopped()
    return reporter.reports
