"""`Leaderboard`: a dataset's ranking, sortable, where selected models are compared side by side.

The comparison shows what the ranking alone hides: how each model got there (its trainings' epoch
curves, overlaid) and where it is strong or weak (per-class precision and recall on the test split).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.schemas import EpochPublic, LeaderboardRow, TrainingPublic
from headstart.widgets.base import Status, plural, resolve_client
from headstart.widgets.curves import EpochCurves
from headstart.widgets.evaluate import per_class_html
from headstart.widgets.grid import Column, Table

COLUMNS = (
    Column("rank", "integer"),
    Column("model"),
    Column("owner"),
    Column("version", "integer"),
    Column("accuracy", "percent"),
    Column("loss", "decimal"),
    Column("test images", "integer"),
    Column("comparable"),
    Column("note"),
)


def _values(row: LeaderboardRow) -> list[Any]:
    return [
        row.rank,
        row.model_name,
        row.owner,
        row.version,
        row.accuracy,
        row.loss,
        row.count,
        "yes" if row.comparable else "no",
        row.note or ("being scored" if row.pending else ""),
    ]


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
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.table = Table(COLUMNS, multiple=True, empty="no models on this board yet", max_height="360px")
        self.table.sort_by("rank")
        self.curves = EpochCurves("training curves", empty="select models to compare")
        self.per_class = w.HTML()
        self.compared: list[int] = []
        self._by_id: dict[int, LeaderboardRow] = {}

        self.refresh_button.on_click(lambda _: self.refresh())
        self.table.observe(lambda _: self.compare(), names="selected")
        super().__init__(
            [
                w.HTML(
                    f"<b>Leaderboard of {html.escape(str(dataset))}</b> (test split): click rows to "
                    "compare them, a heading to sort, type in a heading's box to filter"
                ),
                self.table,
                w.HBox([self.refresh_button, self.status]),
                self.curves,
                self.per_class,
            ]
        )
        self.refresh()

    @property
    def rows(self) -> list[LeaderboardRow]:
        """The rows in the order shown."""
        return [self._by_id[key] for key in self.table.order if key in self._by_id]

    def refresh(self) -> None:
        """Fetch the ranking again; the service scores any model version it has not scored yet."""
        self.status.ok("ranking…")
        try:
            rows = self.client.evaluations.leaderboard(self.dataset)
        except Exception as error:
            self.status.error(error)
            return
        self._by_id = {r.model_id: r for r in rows}
        self.table.show([(r.model_id, _values(r)) for r in rows])
        self.status.ok(f"{len(rows)} models")

    def sort_by(self, column: str, *, descending: bool = False) -> list[LeaderboardRow]:
        """Order the table by one of its columns, as a click on its heading does; returns the rows shown."""
        self.table.sort_by(column, descending=descending)
        return self.rows

    def select(self, model_ids: Sequence[int]) -> None:
        """Select models by id, as a click on their rows would; ids not on the board are ignored."""
        self.table.selected = [int(m) for m in model_ids if int(m) in self._by_id]

    def compare(self) -> None:
        """Overlay the selected models' training curves and their per-class test figures."""
        chosen_ids = set(self.table.selected)
        chosen = [r for r in self.rows if r.model_id in chosen_ids]
        self.compared = [r.model_id for r in chosen]
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
        self.status.ok(
            f"comparing {plural(len(chosen), 'model')}{note}" if chosen else f"{len(self._by_id)} models"
        )
