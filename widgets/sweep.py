"""Sweeps from a notebook: `SweepSetup` chooses the values to try, `SweepBoard` follows the runs.

The board polls the service for the sweep, so it can follow any sweep of yours by id, from any
kernel: the heads train side by side in one job on the service's cluster. It shows every run in a
table, best val accuracy first, their val curves overlaid, and Keep / Discard on each candidate.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.kernels.engine.sweep_plan import sweep_size
from headstart.kernels.errors import HeadstartError, Invalid, NotFound
from headstart.kernels.schemas import OPTIMIZERS, SweepGrid, SweepPublic, TrainingPublic
from headstart.widgets.base import Status, resolve_client, start_polling
from headstart.widgets.curves import EpochCurves
from headstart.widgets.grid import Column, Table
from headstart.widgets.pickers import DatasetPicker, ModelPicker

AXES = {  # each field of the grid: its label, how one value reads, and where a new setup starts
    "learning_rate": ("learning rates", float, "0.0003, 0.001, 0.003"),
    "epochs": ("epochs", int, ""),
    "optimizer": ("optimizers", str, ""),
    "batch_size": ("batch sizes", int, ""),
    "label_smoothing": ("label smoothing", float, "0, 0.1"),
}
COLUMNS = (
    Column("#", "integer"),
    Column("training", "integer"),
    Column("settings"),
    Column("epochs", "integer"),
    Column("val acc", "decimal"),
    Column("status"),
)
SHOWN_CURVES = 8  # the best runs' val curves are drawn; more would be a tangle


def parse_values(text: str, kind: type, label: str) -> list | None:
    """A comma-separated field as a list of values; None when left empty (the base's value)."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        return None
    if not all(items):
        raise Invalid(f"{label}: a value is blank; separate values with single commas")
    try:
        values = [kind(item) for item in items]
    except ValueError:
        raise Invalid(f"{label}: {text!r} is not a comma-separated list") from None
    if kind is str:
        unknown = [v for v in values if v.lower() not in OPTIMIZERS]
        if unknown:
            raise Invalid(f"unknown optimizer {unknown[0]!r}; choose from {', '.join(OPTIMIZERS)}")
        values = [v.lower() for v in values]
    return values


def run_label(run: TrainingPublic, grid: SweepGrid) -> str:
    """A run by the values it was given for the swept fields: `learning_rate 0.001, epochs 10`."""
    swept = [axis for axis, values in grid.model_dump().items() if values is not None]
    return ", ".join(f"{axis} {run.config.get(axis)}" for axis in swept)


class SweepSetup(w.VBox):
    """A model, a dataset and the values to try, with the count of heads the grid makes."""

    def __init__(self, client: HeadstartClient | None = None) -> None:
        self.client = resolve_client(client)
        self.models = ModelPicker(self.client)
        self.datasets = DatasetPicker(self.client)
        self.fields = {
            axis: w.Text(value=start, description=label, placeholder="the default, or values: a, b, c")
            for axis, (label, _, start) in AXES.items()
        }
        for field in self.fields.values():
            field.style = {"description_width": "120px"}
            field.layout = w.Layout(width="460px")
        self.draws = w.BoundedIntText(value=0, min=0, max=10_000, description="random draws")
        self.draws.style = {"description_width": "120px"}
        self.count = w.HTML()
        self.start_button = w.Button(description="Start sweep", button_style="primary", icon="play")
        self.status = Status()
        self.board: SweepBoard | None = None
        self.output = w.VBox()
        super().__init__(
            [
                w.HBox([self.models, self.datasets]),
                *self.fields.values(),
                w.HBox([self.draws, self.count]),
                self.start_button,
                self.status,
                self.output,
            ]
        )
        for field in [*self.fields.values(), self.draws]:
            field.observe(lambda _: self.update_count(), names="value")
        for grid in (self.models.grid, self.datasets.grid):
            grid.observe(lambda _: self.update_count(), names="selected")
        self.start_button.on_click(lambda _: self._start_clicked())
        self.update_count()

    def grid(self) -> SweepGrid:
        """The grid the fields give; Invalid names the field that is wrong."""
        return SweepGrid(
            **{
                axis: parse_values(self.fields[axis].value, kind, label)
                for axis, (label, kind, _) in AXES.items()
            }
        )

    def update_count(self) -> None:
        """Say how many heads the sweep would train, or what is wrong with the fields."""
        try:
            heads = sweep_size(self.grid(), self.draws.value or None)
        except Invalid as error:
            self.count.value = f"<i>{html.escape(str(error))}</i>"
            self.start_button.disabled = True
            return
        chosen = self.models.value is not None and self.datasets.value is not None
        self.count.value = f"<b>{heads}</b> head{'s' if heads != 1 else ''}, trained side by side" + (
            "" if chosen else "; pick a model and a dataset to start"
        )
        self.start_button.disabled = not chosen

    def start(self) -> SweepBoard:
        """Start the sweep and show its board below the setup."""
        if self.models.value is None or self.datasets.value is None:
            raise Invalid("pick a model and a dataset first")
        begun = self.client.sweeps.begin(
            self.models.value, self.datasets.value, self.grid(), draws=self.draws.value or None
        )
        if self.board is not None:
            self.board.close()
        self.board = SweepBoard(begun.id, self.client)
        self.output.children = [self.board]
        return self.board

    def _start_clicked(self) -> None:
        try:
            self.start()
        except HeadstartError as error:
            self.status.error(error)
        else:
            self.status.ok("sweep started")


class SweepBoard(w.VBox):
    """One sweep, live: its runs ranked by val accuracy, their val curves, and a decision per run."""

    def __init__(
        self, sweep_id: int, client: HeadstartClient | None = None, *, poll: float = 1.0, follow: bool = True
    ) -> None:
        self.client = resolve_client(client)
        self.sweep_id = int(sweep_id)
        self.sweep: SweepPublic | None = None
        self.task: asyncio.Task[Any] | None = None
        self.title = w.HTML(f"<b>sweep {self.sweep_id}</b>")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.phase = w.Label("loading")
        self.curves = EpochCurves(
            "the best runs", metrics=("accuracy", "loss"), height="300px", empty="waiting for the first epoch"
        )
        self.table = Table(COLUMNS, empty="no runs yet", max_height="300px")
        self.table.sort_by("#")
        # Keep and Discard act on the selected run, and are there only while it awaits a decision.
        self.keep_button = w.Button(description="Keep", button_style="success", icon="check")
        self.discard_button = w.Button(description="Discard", button_style="danger", icon="trash")
        self.chosen = w.HTML()
        self.decision = w.HBox(
            [self.chosen, self.keep_button, self.discard_button], layout=w.Layout(display="none")
        )
        self.status = Status()
        super().__init__(
            [
                self.title,
                w.HBox([self.progress, self.phase]),
                self.table,
                self.decision,
                self.status,
                self.curves,
            ]
        )
        self.table.observe(lambda _: self._show_decision(), names="selected")
        self.keep_button.on_click(lambda _: self._decide_selected("keep_both"))
        self.discard_button.on_click(lambda _: self._decide_selected("discard"))
        running = self.refresh()
        if follow and running:
            self.task = start_polling(self._step, poll)

    @property
    def running(self) -> bool:
        job = self.sweep.job if self.sweep else None
        return job is None or job.state in ("queued", "running")

    def refresh(self) -> bool:
        """Poll once and update every widget; answers whether the sweep still runs."""
        try:
            sweep = self.client.sweeps.get(self.sweep_id)
        except HeadstartError as error:
            self.status.error(error)
            return not isinstance(error, NotFound)
        self._apply(sweep)
        return self.running

    async def _step(self) -> bool:
        try:
            sweep = await asyncio.to_thread(self.client.sweeps.get, self.sweep_id)
        except HeadstartError as error:
            self.status.error(error)
            return not isinstance(error, NotFound)
        self._apply(sweep)
        return self.running

    def _apply(self, sweep: SweepPublic) -> None:
        self.sweep = sweep
        job = sweep.job
        self.title.value = (
            f"<b>sweep {sweep.id}</b>: model {sweep.model_id} v{sweep.model_version} on dataset "
            f"{sweep.dataset_id}, {len(sweep.runs)} heads"
        )
        if job is not None:
            with self.progress.hold_sync():
                self.progress.max = max(job.total, 1)
                self.progress.value = job.total if job.state == "succeeded" else min(job.done, job.total)
                self.progress.bar_style = {"failed": "danger", "cancelled": "warning"}.get(
                    job.state, "success" if job.state == "succeeded" else "info"
                )
            phase = job.phase or "waiting"
            self.phase.value = job.reason or (job.state if job.state != "running" else phase)
        self.curves.show(
            [(f"#{rank}", run.epochs) for rank, run in enumerate(sweep.runs[:SHOWN_CURVES], start=1)]
        )
        self._show_table(sweep)

    def _show_table(self, sweep: SweepPublic) -> None:
        self.table.show(
            [
                (
                    run.id,
                    [rank, run.id, run_label(run, sweep.grid), len(run.epochs), run.val_accuracy, run.status],
                )
                for rank, run in enumerate(sweep.runs, start=1)
            ]
        )
        self._show_decision()

    def _selected_run(self) -> tuple[int, TrainingPublic] | None:
        runs = self.sweep.runs if self.sweep else []
        return next(
            ((rank, run) for rank, run in enumerate(runs, start=1) if run.id == self.table.value), None
        )

    def _show_decision(self) -> None:
        picked = self._selected_run()
        if picked is None or picked[1].status != "candidate":
            self.decision.layout.display = "none"
            return
        rank, run = picked
        self.chosen.value = f"run #{rank} (training {run.id}):&nbsp;"
        self.decision.layout.display = "flex"

    def _decide_selected(self, decision: str) -> None:
        picked = self._selected_run()
        if picked is not None:
            self._decide_clicked(picked[1].id, decision, picked[0])

    def decide(self, training_id: int, decision: str, rank: int | None = None) -> None:
        """Keep a run as a new model (named for its sweep and rank) or discard it, then refresh."""
        name = f"sweep {self.sweep_id} #{rank}" if decision == "keep_both" and rank is not None else None
        model = self.client.trainings.decide(training_id, decision, name=name)
        if model is not None:
            self.status.ok(f"kept run {training_id} as model {html.escape(model.name)} (id {model.id})")
        else:
            self.status.ok(f"discarded run {training_id}")
        self.refresh()

    def _decide_clicked(self, training_id: int, decision: str, rank: int) -> None:
        try:
            self.decide(training_id, decision, rank)
        except HeadstartError as error:
            self.status.error(error)

    def close(self) -> None:
        """Stop polling along with the widget."""
        if self.task is not None:
            self.task.cancel()
        super().close()
