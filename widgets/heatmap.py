"""Heatmaps on bqplot's GridHeatMap: the benchmark's bodies by datasets, and confusion matrices.

`ConfusionMatrix` draws true labels down and predicted labels across, in counts or in each true
label's share, and stays readable from 3 classes to 50 and beyond: cells shrink to a floor, the
figure grows past it, and every cell says its labels and its count on hover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import bqplot as bq
import ipywidgets as w
import numpy as np
from bqplot.traits import array_dimension_bounds, array_serialization
from traittypes import Array

# Pixels per class: a cell keeps at least CELL_MIN_PX (big enough to hover) and at most CELL_MAX_PX,
# and the figure aims at FIT_PX across; counts are written in the cells while they have room.
FIT_PX = 520
CELL_MIN_PX, CELL_MAX_PX = 12, 48
COUNTS_IN_CELLS = 12  # classes at most for numbers inside the cells
LABEL_PX = 7  # about one character of an axis label
MARGIN_MIN_PX, MARGIN_MAX_PX = 60, 180
OTHER = "(other)"
MODES = ("counts", "share of true label")
SLANT_DEGREES = 45  # column labels too long for their column


def _colors_to_json(value: Any, widget: Any) -> Any:
    """The colours as nested lists with null for NaN: bqplot's front end gives `null_color` to a
    null cell only (a NaN in a binary array it colours black), and reads plain lists as well."""
    if value is None:
        return None
    return [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(value, dtype=float)]


class Grid(bq.GridHeatMap):
    """bqplot's GridHeatMap, kept two-dimensional: bqplot squeezes its arrays, so one row or one
    column (a 1 x n table) would lose a dimension and a 1 x 1 table be refused. A click's
    selection comes from the browser as a JSON list of [row, column] pairs, which bqplot reads as
    an object array it cannot send back (the update is lost, unobserved): here it is integers."""

    selected = (
        Array(None, allow_none=True)
        .tag(sync=True, **array_serialization)
        .valid(lambda _, value: None if value is None else np.asarray(value, dtype=np.int64))
    )

    row = (
        Array(None, allow_none=True)
        .tag(sync=True, scaled=True, rtype="Number", atype="bqplot.Axis", **array_serialization)
        .valid(array_dimension_bounds(1, 1))
    )
    column = (
        Array(None, allow_none=True)
        .tag(sync=True, scaled=True, rtype="Number", atype="bqplot.Axis", **array_serialization)
        .valid(array_dimension_bounds(1, 1))
    )
    color = (
        Array(None, allow_none=True)
        .tag(
            sync=True,
            scaled=True,
            rtype="Color",
            atype="bqplot.ColorAxis",
            to_json=_colors_to_json,
            from_json=array_serialization["from_json"],
        )
        .valid(array_dimension_bounds(2, 2))
    )


def normalised(counts: np.ndarray) -> np.ndarray:
    """Each row as shares of its true label's images; a label with no images stays at zero."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)


def cell_px(classes: int) -> int:
    return max(CELL_MIN_PX, min(CELL_MAX_PX, FIT_PX // max(classes, 1)))


def margin_px(labels: Sequence[str]) -> int:
    longest = max((len(label) for label in labels), default=0)
    return max(MARGIN_MIN_PX, min(MARGIN_MAX_PX, LABEL_PX * longest + 16))


def fit_column_ticks(axis: bq.Axis, labels: Sequence[str], column_px: float) -> int:
    """Slant a bottom axis's labels when the longest is wider than its column, so that neighbours
    never overlap; returns the pixels the labels take below the plot, its axis label included.

    A slanted label ends at its tick (`text-anchor: end`) and runs down to the left, away from the
    cells: bqplot rotates each label about its tick, and a centred one would cross into the plot.
    """
    longest = LABEL_PX * max((len(label) for label in labels), default=0)
    slant = longest > column_px
    axis.tick_rotate = -SLANT_DEGREES if slant else 0
    axis.tick_style = {**(axis.tick_style or {}), "text-anchor": "end" if slant else "middle"}
    below = math.ceil(longest * math.sin(math.radians(SLANT_DEGREES))) + 12 if slant else 18
    below = min(MARGIN_MAX_PX, below)
    axis.label_offset = f"{below + 4}px"
    return below + 20  # the axis's own label under them


def scrolling(figure: bq.Figure) -> w.Box:
    """A box that holds a figure wider than the notebook and scrolls it sideways (the class marks it
    as meant to scroll, for the browser test's look)."""
    box = w.Box([figure], layout=w.Layout(overflow_x="auto", max_width="100%"))
    box.add_class("headstart-scroll")
    return box


class ConfusionMatrix(w.VBox):
    """A confusion matrix (rows: true labels, columns: predicted) with a counts / shares toggle.

    A matrix may have one column more than it has rows: the model's predictions outside the
    dataset's labels, which the scorer gathers in an "(other)" column.
    """

    def __init__(self) -> None:
        self.mode = w.ToggleButtons(options=MODES, value=MODES[0], style={"button_width": "150px"})
        self.title = w.HTML()
        # White to a middle blue, so that the counts written in the cells stay dark on light.
        self.color_scale = bq.ColorScale(min=0.0, max=1.0, colors=["#f7fbff", "#4a98c9"])
        self.row_scale = bq.OrdinalScale(reverse=True)
        self.column_scale = bq.OrdinalScale()
        self.heatmap = Grid(
            color=np.zeros((1, 1)),
            row=["-"],
            column=["-"],
            scales={"row": self.row_scale, "column": self.column_scale, "color": self.color_scale},
            tooltip=bq.Tooltip(fields=["row", "column", "color"], labels=["true", "predicted", "images"]),
            stroke="transparent",
        )
        self.row_axis = bq.Axis(scale=self.row_scale, side="left", label="true")
        self.column_axis = bq.Axis(scale=self.column_scale, side="bottom", label="predicted")
        self.color_axis = bq.ColorAxis(scale=self.color_scale, side="right", orientation="vertical")
        self.figure = bq.Figure(
            marks=[self.heatmap],
            axes=[self.row_axis, self.column_axis, self.color_axis],
            layout=w.Layout(display="none", flex="0 0 auto"),
        )
        self.counts = np.zeros((0, 0), dtype=np.int64)
        self.labels: list[str] = []
        self.mode.observe(lambda _: self._draw(), names="value")
        # Past FIT_PX the figure grows rather than its cells shrinking: it scrolls in its own box.
        self.scroller = scrolling(self.figure)
        super().__init__([self.title, self.mode, self.scroller], layout=w.Layout(max_width="100%"))
        self.show([], [])

    @property
    def columns(self) -> list[str]:
        return self.labels + [OTHER] * (self.counts.shape[1] - len(self.labels)) if self.counts.size else []

    def show(self, confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> None:
        """Draw a matrix of counts for these true labels; an empty one says so and draws nothing."""
        rows = [list(row) for row in confusion]
        self.counts = np.asarray(rows, dtype=np.int64) if rows and rows[0] else np.zeros((0, 0), np.int64)
        self.labels = [str(label) for label in labels][: len(self.counts)]
        if not self.counts.size:
            self.title.value = "<i>no confusion matrix: nothing was scored against true labels</i>"
            self.figure.layout.display = "none"
            self.mode.layout.display = "none"
            return
        self.title.value = (
            f"<b>confusion</b> (rows: true, columns: predicted): {int(self.counts.sum())} images, "
            f"{len(self.labels)} classes"
        )
        self.mode.layout.display = None
        self.figure.layout.display = None
        self._draw()

    @property
    def shown(self) -> np.ndarray:
        """The values drawn: counts, or each true label's shares."""
        return self.counts.astype(float) if self.mode.value == MODES[0] else normalised(self.counts)

    def _draw(self) -> None:
        if not self.counts.size:
            return
        columns = self.columns
        cell = cell_px(len(columns))
        left = margin_px(self.labels)
        values = self.shown
        counting = self.mode.value == MODES[0]
        with self.heatmap.hold_sync():
            self.heatmap.color = values  # first: the labels are checked against its shape
            self.heatmap.row = list(self.labels)
            self.heatmap.column = columns
            self.heatmap.display_format = (
                (".0f" if counting else ".0%") if len(columns) <= COUNTS_IN_CELLS else None
            )
        self.heatmap.tooltip.labels = ["true", "predicted", "images" if counting else "share"]
        self.heatmap.tooltip.formats = ["", "", ".0f" if counting else ".1%"]
        most = float(values.max())
        self.color_scale.max = most if counting and most > 0 else 1.0
        # Counts tick at whole numbers (a bar up to 3 ticked 0.2, 0.4, ... said images come in parts).
        self.color_axis.tick_format = "d" if counting else ".0%"
        self.color_axis.num_ticks = min(10, int(most) + 1) if counting else 5
        font = {"font-size": "10px" if cell < 18 else "12px"}
        self.row_axis.tick_style = font
        self.column_axis.tick_style = font
        bottom = fit_column_ticks(self.column_axis, columns, cell)
        self.figure.fig_margin = {"top": 10, "bottom": bottom, "left": left + 20, "right": 80}
        self.figure.layout.width = f"{left + 20 + cell * len(columns) + 80}px"
        self.figure.layout.height = f"{10 + cell * len(self.labels) + bottom}px"
