"""`EpochCurves`: the epoch curves of one or more trainings on one bqplot figure.

The training dashboard draws its live loss and accuracy with it; the leaderboard and the model card
overlay several trainings' curves with it, a toggle choosing the metric.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import bqplot as bq
import ipywidgets as w
import numpy as np

from headstart.kernels.schemas import EpochPublic
from headstart.widgets.base import epoch_ticks

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
METRICS = ("accuracy", "loss")


class EpochCurves(w.VBox):
    """Each training's train line (solid) and val line (dashed) in one colour per training.

    `show` takes (name, epochs) pairs; the lines are named "<name> train" and "<name> val" ("train"
    and "val" for an unnamed one). While the same lines are shown again, their points change in
    place, so a live training's curves grow instead of being drawn anew. A val line appears only
    when every epoch held has its val figure. Until some line has a point, the figure is not drawn at
    all, no empty axes: the chart says what would fill it (`empty`).
    """

    def __init__(
        self,
        title: str = "",
        *,
        metrics: Sequence[str] = METRICS,
        width: str = "100%",
        height: str = "320px",
        empty: str = "select models to compare",
    ) -> None:
        self.metric = w.ToggleButtons(
            options=tuple(metrics), value=metrics[0], style={"button_width": "80px"}
        )
        self.toggle = len(metrics) > 1  # one metric needs no choice
        self.x = bq.LinearScale()
        self.y = bq.LinearScale()
        self.y_axis = bq.Axis(scale=self.y, side="left", label=metrics[0], tick_format=".2f")
        self.x_axis = bq.Axis(scale=self.x, side="bottom", label="epoch", tick_format="d")
        self.figure = bq.Figure(
            marks=[],
            axes=[self.x_axis, self.y_axis],
            title=title,
            legend_location="top-right",
            fig_margin={"top": 40, "bottom": 40, "left": 50, "right": 20},
            # min_width 0: a flex item may then shrink below its drawing, which bqplot redraws to fit.
            # overflow hidden: bqplot leaves its (empty) WebGL canvas at the first width drawn.
            layout=w.Layout(width="100%", min_width="0", height=height, margin="0", overflow="hidden"),
        )
        self.empty = w.HTML(
            f"<div class='headstart-empty-chart'>{html.escape(empty)}</div>",
            layout=w.Layout(height=height, display="flex", align_items="center", justify_content="center"),
        )
        self.series: list[tuple[str, list[EpochPublic]]] = []
        self.lines: dict[str, bq.Lines] = {}
        self.metric.observe(lambda _: self._draw(), names="value")
        super().__init__([self.metric, self.figure, self.empty], layout=w.Layout(width=width, min_width="0"))
        self._draw()

    @property
    def drawn(self) -> bool:
        """Whether the figure is on screen: some line has a point."""
        return self.figure.layout.display != "none"

    @property
    def labels(self) -> list[str]:
        """The name of each line drawn, as the legend shows it."""
        return list(self.lines)

    def show(self, series: Sequence[tuple[str, Sequence[EpochPublic]]]) -> None:
        """Draw each (name, epochs) pair; a training with no epochs yet has empty lines."""
        self.series = [(name, sorted(epochs, key=lambda e: e.epoch)) for name, epochs in series]
        self._draw()

    def _draw(self) -> None:
        metric = str(self.metric.value)
        wanted: dict[str, tuple[list[int], list[float], str, str]] = {}
        for n, (name, epochs) in enumerate(self.series):
            colour = PALETTE[n % len(PALETTE)]
            x = [e.epoch for e in epochs]
            prefix = f"{name} " if name else ""
            wanted[f"{prefix}train"] = (x, [getattr(e, metric) for e in epochs], colour, "solid")
            val = [getattr(e, f"val_{metric}") for e in epochs]
            if all(v is not None for v in val):
                wanted[f"{prefix}val"] = (x, val, colour, "dashed")
        if list(wanted) != list(self.lines):
            self.lines = {
                label: self._line(label, colour, style) for label, (_, _, colour, style) in wanted.items()
            }
            self.figure.marks = list(self.lines.values())
        for label, (x, y, _, _) in wanted.items():
            with self.lines[label].hold_sync():
                self.lines[label].x = np.array(x, dtype=float)
                self.lines[label].y = np.array(y, dtype=float)
        self.y_axis.label = metric
        has_points = any(epochs for _, epochs in self.series)
        self.figure.layout.display = None if has_points else "none"
        self.empty.layout.display = "none" if has_points else "flex"
        self.metric.layout.display = None if has_points and self.toggle else "none"
        self.x_axis.tick_values = np.array(
            epoch_ticks(e.epoch for _, epochs in self.series for e in epochs), dtype=float
        )

    def _line(self, label: str, colour: str, style: str) -> bq.Lines:
        return bq.Lines(
            x=np.zeros(0),
            y=np.zeros(0),
            scales={"x": self.x, "y": self.y},
            colors=[colour],
            line_style=style,
            marker="circle",
            marker_size=24,
            labels=[label],
            display_legend=True,
        )
