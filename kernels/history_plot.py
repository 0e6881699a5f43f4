"""A training's loss and accuracy curves, drawn the same in a model card and in a kernel.

The service renders it into a card's history cells, and the cell's own code draws it again when a
user runs the card; it needs matplotlib only, never Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_history(epochs: Sequence[dict[str, Any]], title: str) -> Figure:
    """Loss and accuracy by epoch, train and (where measured) val, side by side, as a pyplot figure.

    `epochs` are a training's epoch figures as the API gives them: `epoch`, `loss`, `accuracy`,
    `val_loss`, `val_accuracy`. In a notebook the figure shows when the cell ends.
    """
    from matplotlib import pyplot

    figure, (loss, accuracy) = pyplot.subplots(1, 2, figsize=(9, 3))
    numbers = [e["epoch"] for e in epochs]
    for axes, key in ((loss, "loss"), (accuracy, "accuracy")):
        axes.plot(numbers, [e[key] for e in epochs], marker="o", label="train")
        val = [e.get(f"val_{key}") for e in epochs]
        if any(v is not None for v in val):
            axes.plot(numbers, val, marker="o", label="val")
        axes.set_xlabel("epoch")
        axes.set_title(key)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
