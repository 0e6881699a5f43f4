"""Re-training from a notebook: `TrainingSetup` chooses and explains a run, `TrainingDashboard` follows it.

The dashboard polls the service for new epochs, so it can follow any training by id, from any kernel,
at any time: the training runs on the service's Dask cluster, not in the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import Any

import ipywidgets as w
from pydantic import ValidationError

from headstart.kernels.client import HeadstartClient
from headstart.kernels.client.trainings import TrainingFollower
from headstart.kernels.engine.head_plan import plan_head
from headstart.kernels.errors import HeadstartError, Invalid, NotFound
from headstart.kernels.schemas import (
    LOSSES,
    OPTIMIZERS,
    DatasetPublic,
    EpochPublic,
    ModelPublic,
    TrainingConfig,
    TrainingPublic,
)
from headstart.widgets.base import Status, resolve_client, start_polling
from headstart.widgets.curves import EpochCurves
from headstart.widgets.pickers import DatasetPicker, ModelPicker

FINE_TUNE_CHOICES: list[tuple[str, int | str]] = [
    ("0 (head only)", 0),
    *((str(k), k) for k in (1, 2, 3, 4, 5, 10, 20, 50)),
    ("all", "all"),
]
DEFAULTS = TrainingConfig()  # the widgets start where the CLI and the API do
PATIENCE_CHOICES: list[tuple[str, int | None]] = [
    ("off", None),
    *((str(k), k) for k in sorted({1, 2, 3, 5, 10} | {DEFAULTS.early_stopping_patience or 1})),
]
DEVICES = ("CPU", "GPU")
OUTCOMES = {  # a finished training's status, as the phase line says it
    "candidate": "candidate",
    "updated": "updated the model",
    "kept_both": "kept both",
    "discarded": "discarded",
    "failed": "failed",
    "cancelled": "cancelled",
}


# --- the plan -------------------------------------------------------------------------------


def head_plan(model: ModelPublic, dataset: DatasetPublic) -> str:
    """What happens to the head (DESIGN.md rule 2), in the words of the plan the training follows."""
    wanted = len(dataset.labels)
    if plan_head(model.kind, model.labels, dataset.labels).keep:
        return f"the head will be kept: its {wanted} labels match the dataset's"
    have = f"{len(model.labels)} labels" if model.labels else "no labels"
    return f"the head will be replaced: {have} -> {wanted} labels"


def body_plan(fine_tune_layers: int | str) -> str:
    """Which part of the body trains."""
    if fine_tune_layers == 0:
        return "body frozen"
    if fine_tune_layers == "all":
        return "whole body fine-tuned"
    return f"last {fine_tune_layers} body layers fine-tuned, the rest frozen"


def cache_plan(
    client: HeadstartClient, model: ModelPublic, dataset: DatasetPublic, fine_tune_layers: int | str
) -> str:
    """Whether the body's features on this dataset are cached, as far as your past trainings tell.

    The API has no question for the cache itself, so this reads the trainings of this model version on
    this dataset that you can see: one that ran with a frozen body left the features cached. Without
    one the answer is honestly "unknown" (a model with the same body may have filled the cache).
    """
    if fine_tune_layers != 0:
        return "features cached: no, the body trains so it runs every epoch"
    try:
        past = client.trainings.list(model_id=model.id)
    except HeadstartError:
        return "features cached: unknown"
    for training in past:
        if (
            training.dataset_id == dataset.id
            and training.model_version == model.version
            and training.feature_cache in ("hit", "miss")
        ):
            return "features cached: yes"
    return "features cached: unknown (no training of this version on this dataset to tell)"


# --- the setup ------------------------------------------------------------------------------


class TrainingSetup(w.VBox):
    """A model, a dataset and the training's settings, with a plain account of what the run will do."""

    def __init__(self, client: HeadstartClient | None = None) -> None:
        self.client = resolve_client(client)
        self.models = ModelPicker(self.client)
        self.datasets = DatasetPicker(self.client)
        self.optimizer = w.Dropdown(
            options=list(OPTIMIZERS), value=DEFAULTS.optimizer, description="optimizer"
        )
        self.learning_rate = w.BoundedFloatText(
            value=DEFAULTS.learning_rate, min=1e-7, max=10.0, step=1e-4, description="learning rate"
        )
        self.loss = w.Dropdown(options=list(LOSSES), value=DEFAULTS.loss, description="loss")
        self.epochs = w.BoundedIntText(value=DEFAULTS.epochs, min=1, max=1000, description="epochs")
        self.batch_size = w.BoundedIntText(
            value=DEFAULTS.batch_size, min=1, max=4096, description="batch size"
        )
        self.fine_tune_layers = w.Dropdown(
            options=FINE_TUNE_CHOICES, value=DEFAULTS.fine_tune_layers, description="fine-tune"
        )
        self.early_stopping = w.Dropdown(
            options=PATIENCE_CHOICES, value=DEFAULTS.early_stopping_patience, description="early stop"
        )
        self.device = w.ToggleButtons(options=list(DEVICES), value="CPU")
        self.plan = w.HTML()
        self.start_button = w.Button(description="Start training", button_style="primary", icon="play")
        self.status = Status()
        self.dashboard: TrainingDashboard | None = None
        self.output = w.VBox()
        self._cache_answers: dict[tuple[int, int, int], str] = {}
        fields = (
            self.optimizer,
            self.learning_rate,
            self.loss,
            self.epochs,
            self.batch_size,
            self.fine_tune_layers,
            self.early_stopping,
        )
        for control in fields:
            # Each description as wide as its words, each value as wide as its half of the grid.
            control.style = {"description_width": "initial"}
            control.layout = w.Layout(width="auto", margin="2px 12px 2px 0")
        settings = w.GridBox(
            [*fields, self.device],
            layout=w.Layout(grid_template_columns="repeat(2, minmax(0, 1fr))"),
        )
        super().__init__(
            [
                w.HTML("<b>1. Model</b>"),
                self.models,
                w.HTML("<b>2. Dataset</b>"),
                self.datasets,
                w.HTML("<b>3. Settings</b>"),
                settings,
                self.plan,
                w.HBox([self.start_button, self.status]),
                self.output,
            ]
        )
        for grid in (self.models.grid, self.datasets.grid):
            grid.observe(lambda _: self.update_plan(), names="selected")
        for control in (
            self.fine_tune_layers,
            self.epochs,
            self.device,
        ):
            control.observe(lambda _: self.update_plan(), names="value")
        self.start_button.on_click(lambda _: self._start_clicked())
        self.update_plan()

    def config(self) -> TrainingConfig:
        """The training's settings from the widgets; Invalid says which one is wrong."""
        try:
            return TrainingConfig(
                optimizer=self.optimizer.value,
                learning_rate=self.learning_rate.value,
                loss=self.loss.value,
                epochs=self.epochs.value,
                batch_size=self.batch_size.value,
                fine_tune_layers=self.fine_tune_layers.value,
                early_stopping_patience=self.early_stopping.value,
                gpu=self.device.value == "GPU",
            )
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise Invalid(f"the settings are not valid: {problems}") from None

    def update_plan(self) -> None:
        """Say what the run will do with the current choices, before it starts."""
        model, dataset = self.models.selected, self.datasets.selected
        self.start_button.disabled = model is None or dataset is None  # it can act once both are chosen
        if model is None or dataset is None:
            missing = " and ".join(n for n, v in (("a model", model), ("a dataset", dataset)) if v is None)
            self.plan.value = f"<i>pick {missing} to see the plan</i>"
            return
        fine_tune = self.fine_tune_layers.value
        key = (model.id, model.version, dataset.id)
        if fine_tune != 0:
            cached = cache_plan(self.client, model, dataset, fine_tune)
        else:
            if key not in self._cache_answers:
                self._cache_answers[key] = cache_plan(self.client, model, dataset, fine_tune)
            cached = self._cache_answers[key]
        steps = "; ".join([head_plan(model, dataset), body_plan(fine_tune), cached])
        where = "a GPU worker" if self.device.value == "GPU" else "a CPU worker"
        self.plan.value = (
            f"<div class='headstart-plan'>Re-train <b>{html.escape(model.name)}</b> v{model.version} on "
            f"<b>{html.escape(dataset.name)}</b> for {self.epochs.value} epochs on {where}: "
            f"{html.escape(steps)}. The original model is not changed until you decide.</div>"
        )

    def start(self) -> TrainingDashboard:
        """Start the training and show its dashboard below; a missing choice raises Invalid, shown too."""
        try:
            model_id, dataset = self.models.value, self.datasets.value
            if model_id is None or dataset is None:
                missing = [n for n, v in (("a model", model_id), ("a dataset", dataset)) if v is None]
                raise Invalid(f"pick {' and '.join(missing)} before starting")
            training = self.client.trainings.begin(model_id, dataset, self.config())
        except HeadstartError as error:
            self.status.error(error)
            raise
        self._cache_answers.clear()  # this run may fill the cache
        self.status.ok(f"training {training.id} started")
        self.dashboard = TrainingDashboard(training.id, self.client)
        self.output.children = [self.dashboard]
        return self.dashboard

    def _start_clicked(self) -> None:
        # start() has shown the error; a button click must not print a traceback.
        with contextlib.suppress(HeadstartError):
            self.start()


# --- the dashboard --------------------------------------------------------------------------


def phase_text(training: TrainingPublic, epochs_held: int) -> str:
    """What a training is doing, in the words of the phase line."""
    if training.status != "running":
        outcome = OUTCOMES.get(training.status, training.status)
        if training.status == "failed" and training.error:
            return f"{outcome}: {training.error}"
        return outcome
    job = training.job
    if job is None or job.state == "queued":
        # A queued job's phase says what it waits for, e.g. "waiting for a worker with GPU=1".
        return f"queued: {job.phase}" if job is not None and job.phase else "queued"
    if job.phase == "features":
        return f"extracting features {job.done}/{job.total}"
    total = int(training.config.get("epochs", 0))
    if job.phase == "epochs" or epochs_held:
        return f"epoch {max(job.done, epochs_held)} of {total}"
    return "starting"


class TrainingDashboard(w.VBox):
    """One training, live: curves, progress, job state, cancel, and the owner's decision at the end.

    Construct it with any training id you may see, running or finished, to re-attach to it.
    """

    def __init__(
        self,
        training_id: int,
        client: HeadstartClient | None = None,
        *,
        poll: float = 1.0,
        follow: bool = True,
    ) -> None:
        self.client = resolve_client(client)
        self.training_id = int(training_id)
        self.training: TrainingPublic | None = None
        # The client's follower keeps the epochs, once each, and starts over with a retried attempt.
        self.follower = TrainingFollower(self.client.trainings, self.training_id)
        self._me: str | None = None
        self.task: asyncio.Task[Any] | None = None
        # Loss and accuracy side by side, each with its train and val line.
        self.curves = {
            metric: EpochCurves(
                metric, metrics=(metric,), width="50%", height="300px", empty="waiting for the first epoch"
            )
            for metric in ("loss", "accuracy")
        }
        for curves in self.curves.values():
            curves.show([("", [])])
        self.title = w.HTML(f"<b>training {self.training_id}</b>")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.phase = w.Label("loading", layout=w.Layout(overflow="visible"))
        self.state = w.Label("", layout=w.Layout(overflow="visible"))
        self.cancel_button = w.Button(
            description="Cancel", icon="stop", button_style="warning", layout=w.Layout(display="none")
        )
        fit = w.Layout(width="auto", min_width="fit-content")  # a button as wide as its words
        self.update_button = w.Button(description="Update the model", button_style="success", layout=fit)
        self.keep_name = w.Text(
            placeholder="name of the new model",
            description="new name",
            style={"description_width": "initial"},
            layout=w.Layout(width="320px", max_width="100%"),
        )
        self.keep_both_button = w.Button(description="Keep both", button_style="info", layout=fit)
        self.discard_button = w.Button(description="Discard", button_style="danger", layout=fit)
        self.decision = w.HBox(
            [self.update_button, self.keep_both_button, self.keep_name, self.discard_button],
            layout=w.Layout(display="none", flex_flow="row wrap"),
        )
        self.status = Status()
        super().__init__(
            [
                self.title,
                w.HBox(list(self.curves.values())),
                w.HBox([self.progress, self.phase, self.state, self.cancel_button]),
                self.decision,
                self.status,
            ]
        )
        self.cancel_button.on_click(lambda _: self.cancel())
        self.update_button.on_click(lambda _: self._decide_clicked("update"))
        self.keep_both_button.on_click(lambda _: self._decide_clicked("keep_both"))
        self.discard_button.on_click(lambda _: self._decide_clicked("discard"))
        running = self.refresh()
        self._describe()
        if follow and running:
            self.task = start_polling(self._step, poll)

    # --- polling ----------------------------------------------------------------------------

    @property
    def lines(self) -> dict[str, Any]:
        """The four live lines by the figure each draws: loss, val_loss, accuracy and val_accuracy."""
        lines = {}
        for metric, curves in self.curves.items():
            lines[metric] = curves.lines.get("train")
            lines[f"val_{metric}"] = curves.lines.get("val")
        return lines

    @property
    def running(self) -> bool:
        """Whether the training may still change by itself (queued or running)."""
        return self.training is None or self.training.status == "running"

    def refresh(self) -> bool:
        """Poll once, here and now, and update every widget; answers whether the training still runs."""
        try:
            training = self._fetch()
        except HeadstartError as error:
            self.status.error(error)
            return not isinstance(error, NotFound)
        self._apply(training)
        return self.running

    @property
    def epochs(self) -> list[EpochPublic]:
        """Every epoch of the training's current attempt, in order."""
        return self.follower.epochs

    def _fetch(self) -> TrainingPublic:
        """Every HTTP call of one poll, so that a poll can make them all in a worker thread."""
        training, _, _ = self.follower.poll()
        if training.status == "candidate" and self._me is None:
            self._me = self.client.me()  # only the owner decides; a plain attribute, not a widget
        return training

    async def _step(self) -> bool:
        """One poll on the event loop: the HTTP calls in a thread, the widget updates here on the loop."""
        try:
            training = await asyncio.to_thread(self._fetch)
        except HeadstartError as error:
            self.status.error(error)
            return not isinstance(error, NotFound)
        self._apply(training)
        return self.running

    def _apply(self, training: TrainingPublic) -> None:
        """Show one poll's answer; only widgets change here, so it must run on the loop's thread."""
        self.training = training
        for curves in self.curves.values():
            curves.show([("", self.epochs)])
        self._show_progress(training)
        self._show_decision(training)

    def _show_progress(self, training: TrainingPublic) -> None:
        job = training.job
        self.phase.value = phase_text(training, len(self.epochs))
        if job is not None:
            where = f" on {job.worker}" if job.worker else ""
            tries = f", attempt {job.attempts}" if job.attempts > 1 else ""
            self.state.value = f"job {job.id}: {job.state}{where}{tries}"
        epochs = max(int(training.config.get("epochs", 1)), 1)
        if training.status == "running" and job is not None and job.phase == "features":
            total, done = max(job.total, 1), job.done
        else:
            total, done = epochs, len(self.epochs)
        if training.status not in ("running", "failed", "cancelled"):
            done = total  # finished, possibly early by early stopping
        with self.progress.hold_sync():
            self.progress.max = total
            self.progress.value = min(done, total)
            self.progress.bar_style = {"failed": "danger", "cancelled": "warning", "running": "info"}.get(
                training.status, "success"
            )
        # Cancel is there only while it can act; after a click it waits, greyed, for the stop.
        self.cancel_button.layout.display = None if training.status == "running" else "none"

    def _show_decision(self, training: TrainingPublic) -> None:
        waiting = training.status == "candidate"
        mine = waiting and self._me == training.owner
        self.decision.layout.display = "flex" if mine else "none"
        if waiting and not mine:
            self.status.ok(f"waiting for {html.escape(training.owner)}'s decision")

    def _describe(self) -> None:
        """The title and the default name for Keep both: the model and dataset's names, when visible."""
        training = self.training
        if training is None:
            return  # refresh() has said what is wrong
        try:
            model = self.client.models.get(training.model_id)
            dataset = self.client.datasets.get(training.dataset_id)
        except HeadstartError:
            return  # the title stays plain; the model may have been deleted since
        self.title.value = (
            f"<b>training {self.training_id}</b>: {html.escape(model.name)} v{training.model_version} "
            f"on {html.escape(dataset.name)}, by {html.escape(training.owner)}"
        )
        self.keep_name.value = f"{model.name} on {dataset.name}"
        # Wide enough for the name it suggests: about 8 px a character and the description's room.
        self.keep_name.layout.width = f"{max(320, 8 * len(self.keep_name.value) + 100)}px"

    # --- actions ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the training to stop; it ends `cancelled` and keeps the epochs it finished."""
        try:
            self.client.trainings.cancel(self.training_id)
        except HeadstartError as error:
            self.status.error(error)
            return
        self.status.ok("asked the training to stop")
        self.cancel_button.disabled = True

    def decide(self, decision: str) -> ModelPublic | None:
        """Carry out the owner's decision on the candidate and show what came of it."""
        name = (self.keep_name.value.strip() or None) if decision == "keep_both" else None
        model = self.client.trainings.decide(self.training_id, decision, name=name)
        if decision == "update" and model is not None:
            self.status.ok(f"updated {html.escape(model.name)} to version {model.version}")
        elif decision == "keep_both" and model is not None:
            self.status.ok(f"kept both: new model {html.escape(model.name)} (id {model.id})")
        else:
            self.status.ok("discarded the candidate; the training stays on record")
        self.refresh()
        return model

    def _decide_clicked(self, decision: str) -> None:
        try:
            self.decide(decision)
        except HeadstartError as error:
            self.status.error(error)

    def close(self) -> None:
        """Stop polling along with the widget."""
        if self.task is not None:
            self.task.cancel()
        super().close()
