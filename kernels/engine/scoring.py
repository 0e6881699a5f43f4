"""Turns a model's predicted probabilities on a dataset into an evaluation: accuracy, loss, per-class
precision and recall, a confusion matrix and top-k predictions. Pure numpy, so the service can use it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from headstart.kernels.errors import Invalid

# Keeps -log p finite when a model puts (numerically) zero mass on the true label.
LOSS_EPSILON = 1e-7


@dataclass(frozen=True)
class LabelMapping:
    """How a model's output labels line up, by name, with a dataset's labels."""

    # For each dataset label index, the model output index that carries it, or -1.
    model_index: tuple[int, ...]
    comparable: bool
    note: str
    missing: tuple[str, ...] = ()

    @property
    def overlaps(self) -> bool:
        """Whether the model knows at least one dataset label, so that some images can be scored."""
        return any(i >= 0 for i in self.model_index)


def _check_unique(labels: list[str], what: str) -> None:
    # A repeated name would make the mapping by name ambiguous.
    repeated = sorted(label for label, times in Counter(labels).items() if times > 1)
    if repeated:
        raise Invalid(f"{what} labels repeat: {', '.join(repeated)}")


def map_labels(model_labels: list[str] | None, dataset_labels: list[str]) -> LabelMapping:
    """Map each dataset label to the model output of the same name; `model_labels=None` is a
    feature-vector model, which has no labels and so no accuracy."""
    _check_unique(dataset_labels, "dataset")
    if model_labels is None:
        return LabelMapping(
            model_index=(-1,) * len(dataset_labels),
            comparable=False,
            note="the model outputs feature vectors, not labels: predictions only, no accuracy",
            missing=tuple(dataset_labels),
        )
    _check_unique(model_labels, "model")
    if not dataset_labels:
        return LabelMapping((), False, "the dataset has no labels: predictions only, no accuracy")
    position = {label: i for i, label in enumerate(model_labels)}
    model_index = tuple(position.get(label, -1) for label in dataset_labels)
    missing = tuple(label for label, i in zip(dataset_labels, model_index, strict=True) if i < 0)
    if not missing:
        extra = len(model_labels) - len(dataset_labels)
        note = (
            f"the model has {extra} labels outside the dataset; predicting one of them counts as an error"
            if extra
            else ""
        )
        return LabelMapping(model_index, True, note)
    if len(missing) == len(dataset_labels):
        return LabelMapping(
            model_index,
            False,
            "the model shares no labels with the dataset: predictions only, no accuracy",
            missing,
        )
    return LabelMapping(
        model_index,
        False,
        f"the model lacks dataset labels {', '.join(missing)}; "
        "scored only on the images whose true label it knows",
        missing,
    )


@dataclass(frozen=True)
class EvaluationResult:
    """One model scored on a dataset split or a list of images; `to_dict()` is what the catalog stores."""

    comparable: bool
    note: str
    count: int
    accuracy: float | None
    loss: float | None
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    predictions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy: plain ints, floats, strings, lists and dicts."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Rebuild a result from `to_dict()` output (for example after a JSON round trip)."""
        names = [f.name for f in fields(cls)]
        absent = [name for name in names if name not in data]
        if absent:
            raise Invalid(f"an evaluation lacks {', '.join(absent)}")
        return cls(**{name: data[name] for name in names})


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _top_predictions(probabilities: np.ndarray, model_labels: list[str], top_k: int) -> list[list[dict]]:
    k = min(top_k, probabilities.shape[1])
    # A stable sort on the negated row keeps the lower output index first among equal probabilities,
    # so the order is reproducible.
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [{"label": model_labels[j], "probability": float(row[j])} for j in top]
        for row, top in zip(probabilities, order, strict=True)
    ]


def score(
    probabilities: np.ndarray,
    true: np.ndarray | None,
    *,
    model_labels: list[str] | None,
    dataset_labels: list[str],
    top_k: int = 3,
    names: list[str] | None = None,
) -> EvaluationResult:
    """Score `probabilities` (n images by the model's outputs) against `true` dataset label indices.

    `true=None` evaluates a list of image files: predictions only. `names` (one per image) gives each
    prediction a "file" instead of an "index". A feature-vector model's predictions carry no "top".
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise Invalid(f"probabilities must be (images, outputs), not shape {probabilities.shape}")
    n, n_outputs = probabilities.shape
    if model_labels is not None and n_outputs != len(model_labels):
        raise Invalid(f"the model has {len(model_labels)} labels but {n_outputs} outputs")
    if not np.isfinite(probabilities).all():
        raise Invalid("the model produced non-finite outputs (NaN or infinity)")
    if top_k < 1:
        raise Invalid(f"top_k must be at least 1, not {top_k}")
    if names is not None and len(names) != n:
        raise Invalid(f"{len(names)} names for {n} images")
    mapping = map_labels(model_labels, dataset_labels)

    true_labels: list[str | None] = [None] * n
    if true is not None:
        true = np.asarray(true)
        if true.shape != (n,) or (n and not np.issubdtype(true.dtype, np.integer)):
            raise Invalid(f"true labels must be {n} integers, not shape {true.shape} of {true.dtype}")
        true = true.astype(np.int64)
        if n and (true.min() < 0 or true.max() >= len(dataset_labels)):
            raise Invalid(f"true labels must lie in [0, {len(dataset_labels)})")
        true_labels = [dataset_labels[t] for t in true]

    tops = (
        _top_predictions(probabilities, model_labels, top_k)
        if model_labels is not None
        else [[] for _ in range(n)]
    )
    predictions = [
        {
            **({"file": names[i]} if names is not None else {"index": i}),
            "true": true_labels[i],
            "top": tops[i],
        }
        for i in range(n)
    ]

    if true is None or not mapping.overlaps:
        note = mapping.note if true is not None else "no true labels: predictions only, no accuracy"
        return EvaluationResult(False, note, 0, None, None, [], [], predictions)

    n_labels = len(dataset_labels)
    model_index = np.asarray(mapping.model_index, dtype=np.int64)
    # Model outputs outside the dataset all land in one extra "other" column, index n_labels.
    dataset_index = np.full(n_outputs, n_labels, dtype=np.int64)
    for d, m in enumerate(mapping.model_index):
        if m >= 0:
            dataset_index[m] = d
    has_other = bool((dataset_index == n_labels).any())

    scored = model_index[true] >= 0
    true_scored = true[scored]
    probabilities_scored = probabilities[scored]
    predicted = dataset_index[np.argmax(probabilities_scored, axis=1)]
    count = int(scored.sum())

    confusion = np.zeros((n_labels, n_labels + (1 if has_other else 0)), dtype=np.int64)
    np.add.at(confusion, (true_scored, predicted), 1)
    hits = np.diag(confusion[:, :n_labels])
    support = confusion.sum(axis=1)
    predicted_as = confusion[:, :n_labels].sum(axis=0)
    per_class = [
        {
            "label": label,
            "precision": _ratio(int(hits[d]), int(predicted_as[d])),
            "recall": _ratio(int(hits[d]), int(support[d])),
            "support": int(support[d]),
        }
        for d, label in enumerate(dataset_labels)
    ]

    accuracy = loss = None
    if count:
        accuracy = float(hits.sum() / count)
        p_true = probabilities_scored[np.arange(count), model_index[true_scored]]
        loss = float(np.mean(-np.log(np.clip(p_true, LOSS_EPSILON, 1.0))))
    note = mapping.note if count else mapping.note or "no images of a label the model knows"
    return EvaluationResult(
        comparable=mapping.comparable and count > 0,
        note=note,
        count=count,
        accuracy=accuracy,
        loss=loss,
        per_class=per_class,
        confusion=confusion.tolist(),
        predictions=predictions,
    )
