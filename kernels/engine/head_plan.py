"""DESIGN.md rule 2, with no Keras: whether a re-training keeps the model's head or gives it a new one.

The training task follows the plan, and the training widget says it before anything runs, so both
import it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from headstart.kernels.errors import Invalid


@dataclass(frozen=True)
class HeadPlan:
    """Whether the model's head is kept (labels equal as sets) and how its columns are reordered."""

    keep: bool
    order: tuple[int, ...] | None  # for each dataset label, the matching column of the old head


def plan_head(kind: str, model_labels: Sequence[str] | None, dataset_labels: Sequence[str]) -> HeadPlan:
    """Keep a classifier's head when it knows exactly the dataset's labels, otherwise replace it."""
    if kind != "classifier" or model_labels is None or set(model_labels) != set(dataset_labels):
        return HeadPlan(keep=False, order=None)
    if len(model_labels) != len(dataset_labels):
        raise Invalid("the model's labels contain duplicates")
    position = {label: i for i, label in enumerate(model_labels)}
    return HeadPlan(keep=True, order=tuple(position[label] for label in dataset_labels))
