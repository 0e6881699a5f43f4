"""The transfer benchmark from a notebook: every body you may see by every dataset, as a heatmap.

Each cell is the standard linear probe's test accuracy of a body on a dataset, computed once on the
service's cluster (`HeadstartClient.benchmark`). Rows are bodies, best mean rank first, each labelled
with its mean rank; a pending cell is grey until its probe ends, and the board polls until none is.
A click on a cell opens its per-class figures: precision, recall and support per label, and the
confusion matrix.
"""

from __future__ import annotations

import asyncio
import html
import math
from typing import Any

import bqplot as bq
import ipywidgets as w
import numpy as np

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import HeadstartError
from headstart.kernels.schemas import BenchmarkCellPublic, BenchmarkPublic, BenchmarkRow
from headstart.widgets.base import Status, plural, resolve_client, start_polling
from headstart.widgets.grid import Column, Table
from headstart.widgets.heatmap import ConfusionMatrix, Grid, fit_column_ticks, scrolling

RANKING_COLUMNS = (
    Column("body"),
    Column("sha"),
    Column("architecture"),
    Column("weights"),
    Column("models", "integer"),
    Column("mean rank", "decimal"),
)
PENDING_COLOR = "#c8c8c8"  # a cell not scored yet: grey, not a colour of the accuracy scale
# Pale yellow to a middle green: the accuracy written in each cell stays dark on light at both ends
# (viridis, which starts at a deep purple, hid a 0.00 written in black).
ACCURACY_COLORS = ["#ffffcc", "#41ab5d"]
ROW_HEIGHT = 34  # pixels per body in the heatmap
COLUMN_PX = 96  # pixels per dataset: room for an accuracy, and a click
LEFT_PX = 330  # the bodies' names, short shas and mean ranks
RIGHT_PX = 20


def row_label(row: BenchmarkRow) -> str:
    """A body as its row reads: its first model's name, its sha's start and its mean rank."""
    rank = "-" if row.mean_rank is None else f"{row.mean_rank:.2f}"
    return f"{row.name} · {row.body[:8]} · mean rank {rank}"


def accuracies(table: BenchmarkPublic) -> np.ndarray:
    """The table's accuracies as a (bodies, datasets) array; NaN where a cell has none yet."""
    return np.array(
        [
            [cell.accuracy if cell.accuracy is not None else math.nan for cell in row.cells]
            for row in table.rows
        ],
        dtype=float,
    ).reshape(len(table.rows), len(table.datasets))


def per_class_html(shown: BenchmarkCellPublic) -> str:
    """A cell's figures: its state and accuracy, and precision, recall and support per label."""
    cell = shown.cell

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    head = (
        f"<b>{html.escape(shown.name)}</b> ({shown.body[:12]}) on <b>{html.escape(cell.dataset)}</b>: "
        f"{cell.state}"
        + ("" if cell.accuracy is None else f", accuracy {cell.accuracy:.3f} on {cell.count} test images")
        + (f"; {html.escape(cell.note)}" if cell.note else "")
    )
    if not shown.per_class:
        return head
    rows = "".join(
        f"<tr><td>{html.escape(str(c['label']))}</td><td>{number(c['precision'])}</td>"
        f"<td>{number(c['recall'])}</td><td>{c['support']}</td></tr>"
        for c in shown.per_class
    )
    return (
        f"{head}<br><small>{html.escape(shown.probe)}</small>"
        "<table class='headstart-per-class'><tr><th>label</th><th>precision</th><th>recall</th>"
        f"<th>support</th></tr>{rows}</table>"
    )


class BenchmarkBoard(w.VBox):
    """Bodies by datasets: a GridHeatMap of probe accuracies, mean ranks, and a cell's figures."""

    def __init__(
        self,
        client: HeadstartClient | None = None,
        datasets: list[str] | None = None,
        *,
        poll: float = 2.0,
        follow: bool = True,
    ) -> None:
        self.client = resolve_client(client)
        self.datasets = datasets
        self.table: BenchmarkPublic | None = None
        self.task: asyncio.Task[Any] | None = None
        self.title = w.HTML("<b>transfer benchmark</b>")
        self.color_scale = bq.ColorScale(min=0.0, max=1.0, colors=ACCURACY_COLORS)
        self.row_scale = bq.OrdinalScale(reverse=True)
        self.column_scale = bq.OrdinalScale()
        self.column_axis = bq.Axis(scale=self.column_scale, side="bottom", label="dataset")
        self.heatmap = Grid(
            color=np.full((1, 1), math.nan),
            row=["-"],
            column=["-"],
            scales={"row": self.row_scale, "column": self.column_scale, "color": self.color_scale},
            null_color=PENDING_COLOR,
            display_format=".2f",
            interactions={"click": "select"},
            selected_style={"stroke": "red", "stroke-width": "3"},
            tooltip=bq.Tooltip(fields=["row", "column", "color"], labels=["body", "dataset", "accuracy"]),
        )
        self.figure = bq.Figure(
            marks=[self.heatmap],
            axes=[
                # The row labels name the bodies: an axis label there would sit on top of them.
                bq.Axis(scale=self.row_scale, side="left"),
                self.column_axis,
                # No colour bar: every cell writes its accuracy, and pending ones are grey.
            ],
            fig_margin={"top": 20, "bottom": 50, "left": LEFT_PX, "right": RIGHT_PX},
            layout=w.Layout(min_width="0", margin="0", overflow="hidden", display="none"),
        )
        # Columns keep their width as datasets are added: past the notebook's width, it scrolls.
        self.scroller = scrolling(self.figure)
        self.empty = w.HTML("")
        self.details = w.HTML("<i>click a cell for its per-class figures</i>")
        self.confusion = ConfusionMatrix()
        self.confusion.layout.display = "none"
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.status = Status()
        # The same table as rows to sort and filter: each body's facts, mean rank and accuracies.
        self.ranking = Table(RANKING_COLUMNS, empty="no bodies yet", max_height="280px")
        self.ranking.layout.display = "none"
        super().__init__(
            [
                self.title,
                self.empty,
                self.scroller,
                self.ranking,
                self.details,
                self.confusion,
                self.refresh_button,
                self.status,
            ]
        )
        self.heatmap.observe(self._selected, names="selected")
        self.refresh_button.on_click(lambda _: self.refresh())
        pending = self.refresh()
        if follow and pending:
            self.task = start_polling(self._step, poll)

    # --- the table --------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Ask once and redraw; answers whether cells are still pending."""
        try:
            table = self.client.benchmark.table(self.datasets)
        except HeadstartError as error:
            self.status.error(error)
            return False
        self._apply(table)
        return table.pending > 0

    async def _step(self) -> bool:
        try:
            table = await asyncio.to_thread(self.client.benchmark.table, self.datasets)
        except HeadstartError as error:
            self.status.error(error)
            return False
        self._apply(table)
        return table.pending > 0

    def _apply(self, table: BenchmarkPublic) -> None:
        self.table = table
        cells = len(table.rows) * len(table.datasets)
        pending = f"; {table.pending} cells pending, being probed" if table.pending else ""
        self.title.value = (
            f"<b>transfer benchmark</b>: {plural(len(table.rows), 'body', 'bodies')} by "
            f"{plural(len(table.datasets), 'dataset')}, "
            f"{cells - table.pending} cells scored{pending}. Each cell is the test accuracy of a "
            "linear probe on the body's cached features; rows come best mean rank first."
        )
        self._rank(table)
        if not cells:
            self.figure.layout.display = "none"
            self.empty.value = "<i>no bodies or no datasets yet: create a model and add a dataset</i>"
            return
        self.empty.value = ""
        self.figure.layout.display = None
        # A name wider than its column slants down to the left, so none passes the plot's right edge.
        below = fit_column_ticks(self.column_axis, table.datasets, COLUMN_PX)
        self.figure.fig_margin = {"top": 20, "bottom": below, "left": LEFT_PX, "right": RIGHT_PX}
        self.figure.layout.width = f"{LEFT_PX + COLUMN_PX * len(table.datasets) + RIGHT_PX}px"
        self.figure.layout.height = f"{max(280, 20 + ROW_HEIGHT * len(table.rows) + below)}px"
        with self.heatmap.hold_sync():
            # The colour first: the row and column labels are checked against its shape.
            self.heatmap.color = accuracies(table)
            self.heatmap.row = [row_label(row) for row in table.rows]
            self.heatmap.column = list(table.datasets)

    def _rank(self, table: BenchmarkPublic) -> None:
        columns = [*RANKING_COLUMNS, *(Column(name, "percent") for name in table.datasets)]
        if [c.title for c in columns] != self.ranking.titles:
            self.ranking.set_columns(columns)
            self.ranking.sort_by("mean rank")
        self.ranking.show(
            [
                (
                    row.body,
                    [
                        row.name,
                        row.body[:12],
                        row.architecture,
                        row.weights_source,
                        len(row.models),
                        row.mean_rank,
                        *(cell.accuracy for cell in row.cells),
                    ],
                )
                for row in table.rows
            ]
        )
        self.ranking.layout.display = None if table.rows else "none"

    # --- one cell ---------------------------------------------------------------------------

    def select(self, row: int, column: int) -> BenchmarkCellPublic | None:
        """Show the per-class figures of the cell at (row, column) of the drawn table."""
        if (
            self.table is None
            or not (0 <= row < len(self.table.rows))
            or not (0 <= column < len(self.table.datasets))
        ):
            return None
        body = self.table.rows[row].body
        dataset = self.table.rows[row].cells[column].dataset
        try:
            shown = self.client.benchmark.cell(body, dataset)
        except HeadstartError as error:
            self.status.error(error)
            return None
        self.details.value = per_class_html(shown)
        self.confusion.show(shown.confusion, [str(c["label"]) for c in shown.per_class])
        self.confusion.layout.display = None if shown.per_class else "none"
        return shown

    def _selected(self, change: dict) -> None:
        picked = change["new"]
        if picked is None or len(picked) == 0:
            return
        row, column = (int(v) for v in np.asarray(picked).reshape(-1, 2)[-1])
        self.select(row, column)

    def close(self) -> None:
        """Stop polling along with the widget."""
        if self.task is not None:
            self.task.cancel()
        super().close()
