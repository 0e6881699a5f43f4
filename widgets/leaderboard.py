"""`Leaderboard`: a dataset's ranking, sortable, where selected models are compared side by side.

The comparison shows what the ranking alone hides: how each model got there (its trainings' epoch
curves, overlaid) and where it is strong or weak (per-class precision and recall on the test split).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.schemas import EpochPublic, LeaderboardRow, TrainingPublic
from headstart.widgets.base import Status, resolve_client
from headstart.widgets.curves import EpochCurves
from headstart.widgets.evaluate import per_class_html

# Columns as (heading, row attribute); the heading names the sort too.
COLUMNS = (
    ("rank", "rank"),
    ("model", "model_name"),
    ("owner", "owner"),
    ("version", "version"),
    ("accuracy", "accuracy"),
    ("loss", "loss"),
    ("comparable", "comparable"),
    ("note", "note"),
)


def _sort_key(column: str) -> Callable[[LeaderboardRow], tuple]:
    attribute = dict(COLUMNS)[column]

    def key(row: LeaderboardRow) -> tuple:
        value = getattr(row, attribute)
        # Unranked rows (no accuracy, no rank) sort last whichever way the column is read.
        return (value is None, value if value is not None else 0)

    return key


def training_series(name: str, trainings: Sequence[TrainingPublic]) -> list[tuple[str, list[EpochPublic]]]:
    """One (line name, epochs) pair per training with epochs; a model with several gets them numbered."""
    trainings = [t for t in trainings if t.epochs]
    if len(trainings) == 1:
        return [(name, list(trainings[0].epochs))]
    return [(f"{name} #{t.id}", list(t.epochs)) for t in trainings]


class Leaderboard(w.VBox):
    """Every model you may see, ranked on a dataset's test split; select rows to compare them."""

    def __init__(self, dataset: int | str, client: HeadstartClient | None = None) -> None:
        self.client = resolve_client(client)
        self.dataset = dataset
        self.status = Status()
        self.rows: list[LeaderboardRow] = []
        self.sort = w.Dropdown(
            options=[heading for heading, _ in COLUMNS], value="rank", description="sort by"
        )
        self.descending = w.Checkbox(value=False, description="descending", indent=False)
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.table = w.HTML()
        self.selection = w.SelectMultiple(description="compare", rows=6, layout=w.Layout(width="520px"))
        self.curves = EpochCurves("training curves")
        self.per_class = w.HTML()
        self.compared: list[int] = []

        self.sort.observe(lambda _: self._show(), names="value")
        self.descending.observe(lambda _: self._show(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.selection.observe(lambda _: self.compare(), names="value")
        super().__init__(
            [
                w.HTML(f"<b>Leaderboard of {html.escape(str(dataset))}</b> (test split)"),
                w.HBox([self.sort, self.descending, self.refresh_button]),
                self.table,
                self.selection,
                self.status,
                self.curves,
                self.per_class,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        """Fetch the ranking again; the service scores any model version it has not scored yet."""
        self.status.ok("ranking…")
        try:
            rows = self.client.evaluations.leaderboard(self.dataset)
        except Exception as error:
            self.status.error(error)
            return
        self.rows = rows
        self._show()
        keep = [m for m in self.selection.value if any(r.model_id == m for r in rows)]
        with self.selection.hold_trait_notifications():
            self.selection.options = [
                (
                    f"#{r.rank if r.rank is not None else '-'} {r.model_name} v{r.version} · {r.owner}",
                    r.model_id,
                )
                for r in self.rows
            ]
            self.selection.value = tuple(keep)
        self.status.ok(f"{len(rows)} models")

    def sort_by(self, column: str, *, descending: bool = False) -> list[LeaderboardRow]:
        """Order the table by one of its columns; returns the rows as shown."""
        if column not in dict(COLUMNS):
            raise ValueError(f"unknown column {column!r}; choose one of {', '.join(dict(COLUMNS))}")
        # Each change redraws through its observer; setting both and drawing once more is cheap.
        self.sort.value = column
        self.descending.value = descending
        self._show()
        return self.rows

    def _show(self) -> None:
        key = _sort_key(str(self.sort.value))
        ranked = [r for r in self.rows if key(r)[0] is False]
        unranked = [r for r in self.rows if key(r)[0] is True]
        self.rows = sorted(ranked, key=key, reverse=bool(self.descending.value)) + unranked
        self.table.value = self._table_html()

    def _table_html(self) -> str:
        heads = "".join(
            f"<th style='padding:2px 8px;text-align:left'>{heading}"
            f"{(' ▼' if self.descending.value else ' ▲') if heading == self.sort.value else ''}</th>"
            for heading, _ in COLUMNS
        )
        chosen = set(self.selection.value)
        body = []
        for row in self.rows:
            cells = "".join(f"<td style='padding:1px 8px'>{self._cell(row, a)}</td>" for _, a in COLUMNS)
            shade = " style='background:#e8f0fb'" if row.model_id in chosen else ""
            body.append(f"<tr{shade}>{cells}</tr>")
        return (
            "<div style='max-height:360px;overflow:auto'>"
            "<table style='border-collapse:collapse;font-size:12px'>"
            f"<thead><tr>{heads}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )

    @staticmethod
    def _cell(row: LeaderboardRow, attribute: str) -> str:
        value: Any = getattr(row, attribute)
        if value is None:
            return "&ndash;"
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return html.escape(str(value))

    def select(self, model_ids: Sequence[int]) -> None:
        """Select models by id, as a click on their rows would; ids not on the board are ignored."""
        on_board = {r.model_id for r in self.rows}
        self.selection.value = tuple(int(m) for m in model_ids if int(m) in on_board)

    def compare(self) -> None:
        """Overlay the selected models' training curves and their per-class test figures."""
        chosen = [r for r in self.rows if r.model_id in set(self.selection.value)]
        self.compared = [r.model_id for r in chosen]
        self.table.value = self._table_html()
        series: list[tuple[str, Any]] = []
        columns: list[tuple[str, Any]] = []
        untrained: list[str] = []
        try:
            for row in chosen:
                trainings = self.client.trainings.history(row.model_id)
                series.extend(training_series(row.model_name, trainings))
                if not any(t.epochs for t in trainings):
                    untrained.append(row.model_name)
                # The score behind the row is cached, so asking for it again costs no scoring.
                scored = self.client.evaluations.on_split(
                    row.model_id, self.dataset, "test", version=row.version
                )
                columns.append(
                    (f"{row.model_name} v{row.version}", (scored.result or {}).get("per_class", []))
                )
        except Exception as error:
            self.status.error(error)
            return
        self.curves.show(series)
        self.per_class.value = per_class_html(columns) if chosen else ""
        note = f"; not trained here (zoo or uploaded): {', '.join(untrained)}" if untrained else ""
        self.status.ok(f"comparing {len(chosen)} models{note}")
