"""Heads fitted in NumPy: softmax regression on cached features, several heads in one pass.

A frozen body's head is one `Dense(n, softmax)` over a few thousand feature vectors, which is
milliseconds of arithmetic. Keras' `fit` spends seconds around it: a tf.data iterator for every
epoch, tracing the train and test steps, and a separate `evaluate` for validation. So heads on
cached features are fitted here, with Keras' update rules and default hyperparameters for each
optimizer (`keras.optimizers.Adam`, `AdamW`, `SGD`, `RMSprop`), the same losses, label smoothing,
and `keras.callbacks.EarlyStopping(restore_best_weights=True)`'s rule; the result is saved as a
plain Dense layer.

Heads that share a batch size, an optimizer and a seed see the same batches in the same order, so
they train as one stacked matrix: a sweep of eight learning rates costs about one head
(`Stack`). Every head learns on standardized features, and the scaling is folded back into its
weights afterwards (standardization.py).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from headstart.kernels.engine.standardization import FeatureScale
from headstart.kernels.errors import Cancelled
from headstart.kernels.schemas import EpochPublic, TrainingConfig

# Cached features up to this size (as float32) are standardized once and kept in memory; larger
# ones are read from their memory map batch by batch, so memory stays bounded by a batch.
IN_MEMORY_FEATURES_BYTES = 512 * 1024**2
# Rows scored at a time when measuring the validation split.
EVAL_ROWS = 4096
# Keras' defaults (keras/src/optimizers: adam.py, adamw.py, rmsprop.py).
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7
ADAMW_DECAY = 0.004
# exp(-30) is 9e-14: far below any probability that matters (Keras clips them at 1e-7 in its
# cross-entropy), and far enough above float32's subnormals (below 1e-38) that neither the errors
# nor their squares in Adam's second moment fall into them.
LOGIT_FLOOR = 30.0
RMS_RHO = 0.9

Arrays = tuple[np.ndarray, np.ndarray]
# Each epoch of a stack of heads, once it ends: (index of the head's config, its figures) per head.
EpochsSink = Callable[[list[tuple[int, EpochPublic]]], None]


@dataclass
class Head:
    """A Dense softmax head's kernel (features x labels) and bias."""

    kernel: np.ndarray
    bias: np.ndarray

    @classmethod
    def zeros(cls, dim: int, n_labels: int) -> Head:
        """A head that predicts every label alike: softmax regression has one optimum, so random
        starting weights buy nothing, and a feature that never varies keeps a zero weight."""
        return cls(np.zeros((dim, n_labels)), np.zeros(n_labels))


@dataclass
class HeadFit:
    """One head's run: its final weights (on raw features), its finished epochs, and which epoch's
    weights it kept (the best one under early stopping, else the last)."""

    config: TrainingConfig
    head: Head
    epochs: list[EpochPublic] = field(default_factory=list)
    kept: int = 0  # the kept epoch's number, from 1; 0 when no epoch finished

    @property
    def val_accuracy(self) -> float | None:
        """The kept weights' val accuracy, by which a sweep ranks its heads."""
        return self.epochs[self.kept - 1].val_accuracy if self.kept else None


class Features:
    """A split's features as the heads read them: standardized, with a last column of ones.

    The ones column carries the bias, so a stack's kernel and bias are one matrix and one optimizer
    step. Features that fit in IN_MEMORY_FEATURES_BYTES are standardized once; larger ones are read
    from their memory map and standardized batch by batch.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, scale: FeatureScale) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.scale = scale
        self._raw = features
        in_memory = features.shape[0] * features.shape[-1] * 4 <= IN_MEMORY_FEATURES_BYTES
        self._ready = _with_ones(scale.apply(features)) if in_memory else None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows and labels at `indices`."""
        if self._ready is not None:
            return self._ready[indices], self.labels[indices]
        # Sorted indices read the memory map front to back, which the page cache rewards.
        ordered = np.sort(indices)
        return _with_ones(self.scale.apply(self._raw[ordered])), self.labels[ordered]

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, labels) in order, EVAL_ROWS at a time, read as they are asked for."""
        for start in range(0, len(self), EVAL_ROWS):
            yield self.batch(np.arange(start, min(start + EVAL_ROWS, len(self))))


def _with_ones(rows: np.ndarray) -> np.ndarray:
    return np.hstack([rows, np.ones((len(rows), 1), np.float32)])


def fit_heads(
    train: Arrays,
    val: Arrays | None,
    configs: Sequence[TrainingConfig],
    n_labels: int,
    *,
    start: Head | None = None,
    on_epochs: EpochsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[HeadFit]:
    """Fit one head per config on `train`'s features, all starting from `start` (zeros if None).

    `on_epochs([(i, epoch), ...])` hears each epoch of a stack of heads as it ends, once for all the
    heads that ran it, `i` indexing `configs`. `should_stop()` is asked
    after every batch; once it answers true, the fit raises Cancelled and no head is returned.
    The heads come back in the order of `configs`, on raw features.
    """
    features, labels = train
    scale = FeatureScale.of(features)
    dim = int(features.shape[-1])
    first = start or Head.zeros(dim, n_labels)
    kernel, bias = scale.unfold_weights(first.kernel, first.bias)
    train_set = Features(features, labels, scale)
    val_set = Features(val[0], val[1], scale) if val is not None and len(val[1]) else None
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, config in enumerate(configs):
        groups[(config.batch_size, config.optimizer, config.seed)].append(index)
    fits: list[HeadFit | None] = [None] * len(configs)
    for indices in groups.values():
        stack = Stack([configs[i] for i in indices], kernel, bias, n_labels)
        sink = None if on_epochs is None else _relay(on_epochs, indices)
        for i, (weights, epochs, kept) in zip(
            indices, stack.fit(train_set, val_set, sink, should_stop), strict=True
        ):
            fits[i] = HeadFit(configs[i], Head(*scale.fold_weights(*weights)), epochs, kept)
    return [fit for fit in fits if fit is not None]


def _relay(on_epochs: EpochsSink, indices: list[int]) -> EpochsSink:
    return lambda reports: on_epochs([(indices[position], epoch) for position, epoch in reports])


class Stack:
    """Heads trained side by side as one (features x heads*labels) matrix, on the same batches.

    They share the batch size, optimizer and seed; each has its own learning rate, label smoothing,
    epoch count and early stopping. A head that has finished stops changing, while the rest go on.
    """

    def __init__(
        self, configs: list[TrainingConfig], kernel: np.ndarray, bias: np.ndarray, n_labels: int
    ) -> None:
        self.configs = configs
        self.heads = len(configs)
        self.n_labels = n_labels
        # The kernel's rows, then the bias as a last row (Features adds the matching ones column).
        self.weights = np.tile(np.vstack([kernel, bias[None, :]]).astype(np.float32), (1, self.heads))
        # Per column: each head's rate repeated over its labels.
        self.rates = np.repeat([c.learning_rate for c in configs], n_labels).astype(np.float32)
        self.smoothing = np.array([c.label_smoothing for c in configs], np.float32)[None, :, None]
        self.optimizer = configs[0].optimizer
        self.batch_size = configs[0].batch_size
        self.step = 0
        self.moment = np.zeros_like(self.weights)
        self.velocity = np.zeros_like(self.weights)
        self.scratch = np.zeros_like(self.weights)

    # --- the arithmetic ----------------------------------------------------------------------

    def _log_probabilities(self, rows: np.ndarray) -> np.ndarray:
        logits = (rows @ self.weights).reshape(len(rows), self.heads, self.n_labels)
        logits -= logits.max(axis=-1, keepdims=True)
        # A label this far below the best has no probability worth the name; without the floor, a
        # confident head's exp() gives subnormal floats, and arithmetic on those runs ~100x slower.
        np.maximum(logits, -LOGIT_FLOOR, out=logits)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        """(batch, heads, labels) targets: one-hot, smoothed per head as Keras' losses smooth."""
        one_hot = np.eye(self.n_labels, dtype=np.float32)[labels][:, None, :]
        return one_hot * (1 - self.smoothing) + self.smoothing / self.n_labels

    def _figures(
        self, log_p: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed loss and summed correct predictions per head, over the rows given."""
        targets = self._targets(labels) if targets is None else targets
        losses = -(targets * log_p).sum(axis=(0, 2))
        correct = (log_p.argmax(axis=-1) == labels[:, None]).sum(axis=0)
        return losses, correct

    def _train_batch(self, rows: np.ndarray, labels: np.ndarray, active: np.ndarray) -> tuple:
        log_p = self._log_probabilities(rows)
        targets = self._targets(labels)
        errors = ((np.exp(log_p) - targets) / len(rows)).reshape(len(rows), -1)
        self._apply(rows.T @ errors, self.rates * np.repeat(active, self.n_labels))
        return self._figures(log_p, labels, targets)

    def _apply(self, gradient: np.ndarray, rates: np.ndarray) -> None:
        """One optimizer step as Keras takes it, in place; a head whose rates are 0 stays put."""
        self.step += 1
        weights, m, v, scratch = self.weights, self.moment, self.velocity, self.scratch
        if self.optimizer in ("adam", "adamw"):
            if self.optimizer == "adamw":
                np.multiply(weights, rates * ADAMW_DECAY, out=scratch)
                weights -= scratch
            np.subtract(gradient, m, out=scratch)
            scratch *= 1 - BETA_1
            m += scratch
            np.multiply(gradient, gradient, out=scratch)
            scratch -= v
            scratch *= 1 - BETA_2
            v += scratch
            alpha = math.sqrt(1 - BETA_2**self.step) / (1 - BETA_1**self.step)
            np.sqrt(v, out=scratch)
            scratch += EPSILON
            np.divide(m, scratch, out=scratch)
            scratch *= rates * alpha
        elif self.optimizer == "rmsprop":
            v *= RMS_RHO
            np.multiply(gradient, gradient, out=scratch)
            scratch *= 1 - RMS_RHO
            v += scratch
            np.add(v, EPSILON, out=scratch)
            np.sqrt(scratch, out=scratch)
            np.divide(gradient, scratch, out=scratch)
            scratch *= rates
        else:  # sgd, without momentum (Keras' default)
            np.multiply(gradient, rates, out=scratch)
        weights -= scratch

    def _evaluate(self, data: Features) -> tuple[np.ndarray, np.ndarray]:
        losses, correct = np.zeros(self.heads), np.zeros(self.heads)
        for rows, labels in data.chunks():
            batch_losses, batch_correct = self._figures(self._log_probabilities(rows), labels)
            losses += batch_losses
            correct += batch_correct
        return losses / len(data), correct / len(data)

    def _weights(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """One head's (kernel, bias), copied, in float64."""
        columns = self.weights[:, position * self.n_labels : (position + 1) * self.n_labels]
        return columns[:-1].astype(np.float64), columns[-1].astype(np.float64)

    # --- the epochs --------------------------------------------------------------------------

    def fit(
        self,
        train: Features,
        val: Features | None,
        on_epochs: EpochsSink | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[tuple[tuple[np.ndarray, np.ndarray], list[EpochPublic], int]]:
        """Each head's weights (standardized), its epochs and the number of the epoch it kept."""
        rng = np.random.default_rng(self.configs[0].seed)
        stoppers = [EarlyStop(c, has_val=val is not None) for c in self.configs]
        reports: list[list[EpochPublic]] = [[] for _ in self.configs]
        active = np.ones(self.heads, np.float32)
        for epoch in range(max(c.epochs for c in self.configs)):
            for position, config in enumerate(self.configs):
                if epoch >= config.epochs:
                    active[position] = 0.0
            if not active.any():
                break
            started = time.perf_counter()
            losses, correct = np.zeros(self.heads), np.zeros(self.heads)
            order = rng.permutation(len(train))
            for begin in range(0, len(order), self.batch_size):
                batch_losses, batch_correct = self._train_batch(
                    *train.batch(order[begin : begin + self.batch_size]), active
                )
                losses += batch_losses
                correct += batch_correct
                if should_stop is not None and should_stop():
                    raise Cancelled(f"training stopped after {epoch} finished epochs")
            val_figures = self._evaluate(val) if val is not None else None
            seconds = time.perf_counter() - started
            ended = []
            for position in map(int, np.flatnonzero(active)):
                report = EpochPublic(
                    epoch=epoch + 1,
                    loss=float(losses[position] / len(train)),
                    accuracy=float(correct[position] / len(train)),
                    val_loss=None if val_figures is None else float(val_figures[0][position]),
                    val_accuracy=None if val_figures is None else float(val_figures[1][position]),
                    seconds=seconds,
                )
                reports[position].append(report)
                ended.append((position, report))
                if stoppers[position].ended(report, self._weights(position)):
                    active[position] = 0.0
            if on_epochs is not None:
                on_epochs(ended)
        results = []
        for position, stopper in enumerate(stoppers):
            if stopper.best is not None:
                results.append((stopper.best, reports[position], stopper.best_epoch))
            else:
                results.append((self._weights(position), reports[position], len(reports[position])))
        return results


class EarlyStop:
    """`keras.callbacks.EarlyStopping(patience=..., restore_best_weights=True)`'s rule, for one head.

    It watches the val loss (the training loss without a val split). After `patience` epochs with
    no better value the head stops; whether it stopped or ran every epoch, it ends with its best
    epoch's weights, as Keras 3's `on_train_end` restores them. Without patience, a head keeps its
    last weights.
    """

    def __init__(self, config: TrainingConfig, *, has_val: bool) -> None:
        self.patience = config.early_stopping_patience
        self.has_val = has_val
        self.best_loss = math.inf
        self.best: tuple[np.ndarray, np.ndarray] | None = None
        self.best_epoch = 0
        self.wait = 0
        self.stopped = False

    def ended(self, report: EpochPublic, weights: tuple[np.ndarray, np.ndarray]) -> bool:
        if self.patience is None:
            return False
        current = report.val_loss if self.has_val else report.loss
        if self.best is None:
            self.best, self.best_epoch = weights, report.epoch
        self.wait += 1
        if current is not None and current < self.best_loss:
            self.best_loss, self.best, self.best_epoch, self.wait = current, weights, report.epoch, 0
            return False
        if self.wait >= self.patience and report.epoch > 1:
            self.stopped = True
        return self.stopped
