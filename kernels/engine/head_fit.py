"""Heads fitted in NumPy: softmax regression on cached features, several heads in one pass.

A frozen body's head is one `Dense(n, softmax)` over a few thousand feature vectors, which is
milliseconds of arithmetic. Keras' `fit` spends seconds around it: a tf.data iterator for every
epoch, tracing the train and test steps, and a separate `evaluate` for validation. So heads on
cached features are fitted here, with Keras' update rules and default hyperparameters for each
optimizer (`keras.optimizers.Adam`, `AdamW`, `SGD`, `RMSprop`), the same losses, label smoothing,
and `keras.callbacks.EarlyStopping(restore_best_weights=True)`'s rule; the result is saved as a
plain Dense layer.

Heads that share a batch size, an optimizer and a seed see the same batches in the same order, so
they train as one stacked matrix (`Stack`): per batch, a sweep of eight heads takes two matrix
products and one optimizer pass over one matrix (in C, `_optimizers`), not eight of each, and no
Python per head. Every head learns on standardized features, and the scaling is folded back into
its weights afterwards (standardization.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from headstart.kernels.engine import _optimizers
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
# Adam's moments are kept divided by a power of beta (Stack), and brought back to scale when that
# power falls below this, long before float32 could overflow.
RESCALE_BELOW = 1e-6

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
            stop = min(start + EVAL_ROWS, len(self))
            if self._ready is not None:  # views, not copies
                yield self._ready[start:stop], self.labels[start:stop]
            else:
                yield self.batch(np.arange(start, stop))


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
    with _one_blas_thread:
        for indices in groups.values():
            stack = Stack([configs[i] for i in indices], kernel, bias, n_labels)
            sink = None if on_epochs is None else _relay(on_epochs, indices)
            for i, (weights, epochs, kept) in zip(
                indices, stack.fit(train_set, val_set, sink, should_stop), strict=True
            ):
                fits[i] = HeadFit(configs[i], Head(*scale.fold_weights(*weights)), epochs, kept)
    return [fit for fit in fits if fit is not None]


class _OneBlasThread:
    """BLAS on one thread while any fit runs in this process (a context manager, reentrant across
    threads: the first fit in limits it, the last one out restores it).

    A fit's products (a batch of rows by the stacked heads) are too small to gain from a second
    thread, and OpenBLAS' threads wait for each other by spinning: when the other cores are busy
    (a job's reports, another process), a step takes tens of times longer. Finding the libraries
    takes about a millisecond, so it is done once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fits = 0
        self._controller: ThreadpoolController | None = None
        self._limiter: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._fits == 0:
                if self._controller is None:
                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._fits += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._fits -= 1
            if self._fits == 0:
                self._limiter.restore_original_limits()


_one_blas_thread = _OneBlasThread()


def _relay(on_epochs: EpochsSink, indices: list[int]) -> EpochsSink:
    return lambda reports: on_epochs([(indices[position], epoch) for position, epoch in reports])


class Stack:
    """Heads trained side by side as one (features x heads*labels) matrix, on the same batches.

    They share the batch size, optimizer and seed; each has its own learning rate, label smoothing,
    epoch count and early stopping. A head that has finished stops changing, while the rest go on.

    A step is two matrix products for all the heads (the logits, and the gradient) and one in-place
    pass over the stacked matrices for the optimizer (`_optimizers`); every buffer is allocated
    once, and BLAS runs on one thread (`_OneBlasThread`). The matrix holds each head's weights divided by its
    learning rate: every optimizer here moves a weight by its rate times a direction that does not
    depend on the rate (AdamW's decay too scales with it), so one pass steps all the heads, and the
    logits are the product's columns times the rates.
    """

    def __init__(
        self, configs: list[TrainingConfig], kernel: np.ndarray, bias: np.ndarray, n_labels: int
    ) -> None:
        self.configs = configs
        self.heads = len(configs)
        self.n_labels = n_labels
        self.optimizer = configs[0].optimizer
        self.batch_size = configs[0].batch_size
        # Per column: each head's rate repeated over its labels.
        self.rates = np.repeat([c.learning_rate for c in configs], n_labels).astype(np.float32)
        # The kernel's rows, then the bias as a last row (Features adds the matching ones column),
        # divided by the rates.
        start = np.vstack([kernel, bias[None, :]]).astype(np.float32)
        self.scaled = np.tile(start, (1, self.heads)) / self.rates
        smoothing = np.array([c.label_smoothing for c in configs], np.float32)[:, None, None]
        # targets[:, :, label]: each head's target for that label, one-hot, smoothed as Keras'
        # losses smooth (the one-hot matrix is symmetric: its column `label` is its row).
        one_hot = np.eye(n_labels, dtype=np.float32)[None, :, :]
        self.targets = one_hot * (1 - smoothing) + smoothing / n_labels
        self.step = 0
        self.gradient = np.zeros_like(self.scaled)
        # The optimizer's state: SGD has none, Adam two moments, RMSprop one.
        empty = np.zeros((0, self.scaled.shape[1]), np.float32)
        stateful = self.optimizer != "sgd"
        self.moment = np.zeros_like(self.scaled) if self.optimizer in ("adam", "adamw") else empty
        self.velocity = np.zeros_like(self.scaled) if stateful else empty
        # Adam's moments are kept divided by beta**steps (since they were last brought back to
        # scale): the first moment then takes a gradient with one addition and the second with one
        # axpy, instead of decaying whole every step. These are the two powers of beta.
        self.moment_scale = 1.0
        self.velocity_scale = 1.0
        self.active = np.ones(self.heads, bool)
        self.mask = np.ones(self.heads * n_labels, np.float32)  # per column: 0 once its head ended
        self.decay = 1 - self.rates * np.float32(ADAMW_DECAY)  # AdamW's factor per column and step
        # Per-batch buffers: the product of rows and weights (rows, heads*labels); flat ones for the
        # logits (heads*labels, rows) and the targets (heads, labels, rows) of a batch of any size.
        self._product = np.empty((self.batch_size, self.heads * n_labels), np.float32)
        self._logits = np.empty(self.batch_size * self.heads * n_labels, np.float32)
        self._targets = np.empty_like(self._logits)

    def end(self, position: int) -> None:
        """Stop a head: its gradient and moments are zero from now on, so its weights stay put."""
        self.active[position] = False
        columns = slice(position * self.n_labels, (position + 1) * self.n_labels)
        self.mask[columns] = 0.0
        self.decay[columns] = 1.0
        self.moment[:, columns] = 0.0
        self.velocity[:, columns] = 0.0

    # --- the arithmetic ----------------------------------------------------------------------
    # Per batch, the logits, probabilities and targets are (heads, labels, rows): reductions over
    # the labels then run across rows, many at a time, rather than ten values at a time.

    def _log_probabilities(
        self, rows: np.ndarray, buffers: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(heads, labels, rows) log probabilities and probabilities, in `buffers` if given: the
        (rows, heads*labels) product and the (heads*labels, rows) result."""
        product, logits = buffers if buffers is not None else (None, None)
        product = np.matmul(rows, self.scaled, out=product)
        logits = np.multiply(product.T, self.rates[:, None], out=logits)
        logits = logits.reshape(self.heads, self.n_labels, len(rows))
        logits -= logits.max(axis=1, keepdims=True)
        # A label this far below the best has no probability worth the name; without the floor, a
        # confident head's exp() gives subnormal floats, and arithmetic on those runs ~100x slower.
        np.maximum(logits, -LOGIT_FLOOR, out=logits)
        probabilities = np.exp(logits)
        sums = probabilities.sum(axis=1, keepdims=True)
        probabilities /= sums
        logits -= np.log(sums, out=sums)
        return logits, probabilities

    def _figures(
        self, log_p: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed loss and summed correct predictions per head, over the rows given."""
        if targets is None:
            targets = np.take(self.targets, labels, axis=2)
        losses = -np.multiply(targets, log_p, out=targets).sum(axis=(1, 2))
        correct = (log_p.argmax(axis=1) == labels).sum(axis=1)
        return losses, correct

    def _train_batch(self, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = len(rows)
        size = count * self.heads * self.n_labels
        buffers = (self._product[:count], self._logits[:size].reshape(-1, count))
        log_p, errors = self._log_probabilities(rows, buffers)
        targets = np.take(self.targets, labels, axis=2, out=self._targets[:size].reshape(log_p.shape))
        errors -= targets
        errors = errors.reshape(-1, count)
        if self.active.all():
            errors *= self._gradient_scale(count)
        else:
            errors *= self._gradient_scale(count) * self.mask[:, None]
        np.matmul(rows.T, errors.T, out=self.gradient)
        self._apply()
        return self._figures(log_p, labels, targets)

    def _gradient_scale(self, count: int) -> float:
        """What a batch's errors are multiplied by: the mean over its rows and, for Adam, the first
        moment's (1 - beta_1) / beta_1**steps, so that the gradient is the moment's increment."""
        if self.optimizer not in ("adam", "adamw"):
            return 1.0 / count
        if self.moment_scale < RESCALE_BELOW:
            self.moment *= np.float32(self.moment_scale)
            self.moment_scale = 1.0
        if self.velocity_scale < RESCALE_BELOW:
            self.velocity *= np.float32(self.velocity_scale)
            self.velocity_scale = 1.0
        self.moment_scale *= BETA_1
        self.velocity_scale *= BETA_2
        return (1 - BETA_1) / (self.moment_scale * count)

    def _apply(self) -> None:
        """One optimizer step as Keras takes it, in place; a head that ended has a zero step.

        Adam's and RMSprop's steps are one pass over the matrices each (`_optimizers`, in C)."""
        self.step += 1
        if self.optimizer in ("adam", "adamw"):
            # With the moments' scales a = moment_scale, b = velocity_scale (m = a*M, v = b*V), and
            # the gradient G = (1 - beta_1)/a * g: M += G, V += (1 - beta_2)/b * g**2, and
            # m / (sqrt(v) + eps) = a/sqrt(b) * M / (sqrt(V) + eps/sqrt(b)). AdamW first takes
            # w -= rate * decay * w (Keras' order), a factor per column.
            a, root_b = self.moment_scale, math.sqrt(self.velocity_scale)
            alpha = math.sqrt(1 - BETA_2**self.step) / (1 - BETA_1**self.step)
            _optimizers.adam(
                self.scaled,
                self.moment,
                self.velocity,
                self.gradient,
                square_scale=(1 - BETA_2) * (a / (1 - BETA_1)) ** 2 / self.velocity_scale,
                epsilon=EPSILON / root_b,
                step=-alpha * a / root_b,
                decay=self.decay if self.optimizer == "adamw" else None,
                columns=self.scaled.shape[1],
            )
        elif self.optimizer == "rmsprop":
            _optimizers.rmsprop(self.scaled, self.velocity, self.gradient, rho=RMS_RHO, epsilon=EPSILON)
        else:  # sgd, without momentum (Keras' default)
            self.scaled -= self.gradient

    def _evaluate(self, data: Features) -> tuple[np.ndarray, np.ndarray]:
        losses, correct = np.zeros(self.heads), np.zeros(self.heads)
        for rows, labels in data.chunks():
            batch_losses, batch_correct = self._figures(self._log_probabilities(rows)[0], labels)
            losses += batch_losses
            correct += batch_correct
        return losses / len(data), correct / len(data)

    def _snapshot(self, position: int) -> np.ndarray:
        """A copy of one head's columns, as they are kept (divided by its rate): cheap to take."""
        first = position * self.n_labels
        return self.scaled[:, first : first + self.n_labels].copy()

    def _weights(self, position: int, snapshot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One head's (kernel, bias) in float64, now or as `_snapshot` took them."""
        first = position * self.n_labels
        if snapshot is None:
            snapshot = self.scaled[:, first : first + self.n_labels]
        columns = snapshot * np.float64(self.rates[first])
        return columns[:-1], columns[-1]

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
        for epoch in range(max(c.epochs for c in self.configs)):
            for position, config in enumerate(self.configs):
                if epoch >= config.epochs and self.active[position]:
                    self.end(position)
            if not self.active.any():
                break
            started = time.perf_counter()
            losses, correct = np.zeros(self.heads), np.zeros(self.heads)
            order = rng.permutation(len(train))
            for begin in range(0, len(order), self.batch_size):
                batch_losses, batch_correct = self._train_batch(
                    *train.batch(order[begin : begin + self.batch_size])
                )
                losses += batch_losses
                correct += batch_correct
                if should_stop is not None and should_stop():
                    raise Cancelled(f"training stopped after {epoch} finished epochs")
            val_figures = self._evaluate(val) if val is not None else None
            seconds = time.perf_counter() - started
            ended = []
            for position in map(int, np.flatnonzero(self.active)):
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
                if stoppers[position].ended(report, partial(self._snapshot, position)):
                    self.end(position)
            if on_epochs is not None:
                on_epochs(ended)
        results = []
        for position, stopper in enumerate(stoppers):
            if stopper.best is not None:
                weights = self._weights(position, stopper.best)
                results.append((weights, reports[position], stopper.best_epoch))
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
        self.best: np.ndarray | None = None  # the best epoch's weights, as `weights()` gave them
        self.best_epoch = 0
        self.wait = 0
        self.stopped = False

    def ended(self, report: EpochPublic, weights: Callable[[], np.ndarray]) -> bool:
        """Whether the head stops after this epoch; `weights()` copies its weights, if they are kept."""
        if self.patience is None:
            return False
        current = report.val_loss if self.has_val else report.loss
        self.wait += 1
        if current is not None and current < self.best_loss:
            self.best_loss, self.best, self.best_epoch, self.wait = current, weights(), report.epoch, 0
            return False
        if self.best is None:
            self.best, self.best_epoch = weights(), report.epoch
        if self.wait >= self.patience and report.epoch > 1:
            self.stopped = True
        return self.stopped
