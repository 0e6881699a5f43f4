"""Sweeps: many heads of one model version, trained side by side on cached features in one job.

A sweep's grid is checked, and its heads counted against `c.Catalog.max_sweep_heads`, before anything
is recorded. Each head is a run: a training of its own, with its config and epochs, and its own
candidate once the job ends, decided like any other (`update`, `keep_both` or `discard`).
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Epoch, Job, Sweep, Training, User
from headstart.extension.managers.datasets import DatasetManager
from headstart.extension.managers.jobs import JobManager, job_public, new_key
from headstart.extension.managers.models import current_version, version_ref
from headstart.extension.managers.trainings import (
    forget_epochs,
    keep_epochs,
    public_of,
    record_candidate,
    resources_of,
)
from headstart.kernels.engine.sweep_plan import sweep_configs
from headstart.kernels.errors import Conflict, Invalid, NotFound
from headstart.kernels.schemas import SweepCreate, SweepGrid, SweepPublic, TrainingConfig, build
from headstart.kernels.store import candidate_key
from headstart.kernels.tasks.training import SweepInput, SweepResult, sweep

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog


def _ranked(runs: list) -> list:
    """Best val accuracy first; runs without one (still running, or no val split) last, in order."""
    return sorted(runs, key=lambda run: (run.val_accuracy is None, -(run.val_accuracy or 0.0), run.id))


def sweep_public(session: Session, row: Sweep) -> SweepPublic:
    """A sweep with its job and its runs, read in a few queries whatever the number of runs."""
    # The job first, then the runs, as training_public reads them: the job's end and the runs'
    # candidates are one commit, so a job seen ended has its runs' stages recorded.
    job = session.exec(select(Job).where(Job.sweep_id == row.id).order_by(col(Job.id).desc())).first()
    trainings = session.exec(
        select(Training).where(Training.sweep_id == row.id).execution_options(populate_existing=True)
    ).all()
    epochs: dict[int, builtins.list[Epoch]] = defaultdict(builtins.list)
    for epoch in session.exec(
        select(Epoch)
        .where(col(Epoch.training_id).in_([t.id for t in trainings]))
        .order_by(col(Epoch.training_id), col(Epoch.epoch))
    ):
        epochs[epoch.training_id].append(epoch)
    owner = session.get(User, row.owner_id)
    # Every run is a training of the sweep's owner.
    runs = [public_of(t, job, epochs[t.id], owner) for t in trainings]  # type: ignore[index]
    return SweepPublic(
        **row.model_dump(exclude={"grid"}),
        grid=SweepGrid(**row.grid),
        owner=owner.name if owner else "?",
        job=job_public(job) if job is not None else None,
        runs=_ranked(runs),
    )


class SweepManager:
    """Starts sweeps as jobs and records their runs' epochs and candidates."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def begin(
        self,
        user: User,
        model_id: int,
        dataset: int | str,
        grid: SweepGrid | dict,
        *,
        draws: int | None = None,
        config: TrainingConfig | None = None,
        watch: Callable[[dict[str, Any]], None] | None = None,
    ) -> SweepPublic:
        """Record a sweep of a visible model's current version and queue its one job; returns at once.

        `grid` gives lists of learning_rate, epochs, optimizer, batch_size and label_smoothing;
        every combination trains, or `draws` of them picked at random; `config` is what the heads
        share besides the grid. An empty grid, one over `c.Catalog.max_sweep_heads`, or a model
        without a body to cache features of is refused (Invalid) before anything is recorded.
        """
        request = build(
            SweepCreate,
            model_id=model_id,
            dataset=dataset,
            grid=grid,
            draws=draws,
            config=config or TrainingConfig(),
        )
        configs = sweep_configs(
            request.grid, request.config, draws=request.draws, limit=self.catalog.max_sweep_heads
        )
        resources = resources_of(request.config)
        self.catalog.runner.require(resources)
        key = new_key("sweep")
        with transaction(self.catalog.engine) as session:
            model = access.get_visible_model(session, request.model_id, user)
            data = DatasetManager.row(session, request.dataset)
            version = current_version(session, model)
            if version.body_sha is None:
                raise Invalid(
                    f"model {model.id} has no body whose features can be cached, so it cannot be swept; "
                    "train it with `headstart train` instead"
                )
            row = Sweep(
                model_id=model.id,  # type: ignore[arg-type]
                model_version=version.version,
                dataset_id=data.id,  # type: ignore[arg-type]
                grid=request.grid.model_dump(),
                draws=request.draws,
                owner_id=user.id,  # type: ignore[arg-type]
            )
            session.add(row)
            session.flush()
            trainings = []
            for config in configs:
                training = Training(
                    model_id=model.id,  # type: ignore[arg-type]
                    model_version=version.version,
                    dataset_id=data.id,  # type: ignore[arg-type]
                    config=config.model_dump(),
                    owner_id=user.id,  # type: ignore[arg-type]
                    sweep_id=row.id,
                )
                session.add(training)
                trainings.append(training)
            session.flush()
            candidates = [candidate_key(model.id, t.id) for t in trainings]  # type: ignore[arg-type]
            given = SweepInput(
                store_url=self.catalog.store.url,
                ref=version_ref(model, version),
                dataset_id=data.id,
                configs=configs,
                candidates=candidates,
                limits=self.catalog.model_limits,
            )
            job_row = JobManager.create(
                session,
                user.id,  # type: ignore[arg-type]
                "sweep",
                key=key,
                sweep_id=row.id,
                request={
                    "trainings": [t.id for t in trainings],
                    "resources": resources,
                    "staged": candidates,
                },
            )
            job = job_public(job_row)
            recorded = sweep_public(session, row)
        self.catalog.jobs.start(job, sweep, given, resources=resources, watch=watch)
        return recorded

    def start(
        self,
        user: User,
        model_id: int,
        dataset: int | str,
        grid: SweepGrid | dict,
        *,
        draws: int | None = None,
        config: TrainingConfig | None = None,
        progress: Callable[[str | None, int, int], None] | None = None,
    ) -> SweepPublic:
        """Run a sweep and wait for its candidates: the command line's way; runs come best first.

        `progress(phase, done, total)` follows its job: the body's feature pass when the cache
        misses, then the epochs of all runs. A failed sweep raises its error; a cancelled one is
        returned.
        """

        def watch(message: dict[str, Any]) -> None:
            if progress is not None and message.get("event") == "progress":
                progress(message.get("phase"), int(message["done"]), int(message["total"]))

        begun = self.begin(user, model_id, dataset, grid, draws=draws, config=config, watch=watch)
        ended = self.catalog.jobs.wait(begun.job.id)  # type: ignore[union-attr]
        if ended.job.state != "cancelled":
            ended.result()
        return self.get(user, begun.id)

    def get(self, user: User, sweep_id: int) -> SweepPublic:
        """One of the user's sweeps, its runs ranked; another user's is NotFound."""
        with transaction(self.catalog.engine) as session:
            row = session.get(Sweep, sweep_id)
            if row is None or row.owner_id != user.id:
                raise NotFound(f"sweep {sweep_id} not found")
            return sweep_public(session, row)

    def list(self, user: User) -> builtins.list[SweepPublic]:
        """The user's sweeps, oldest first."""
        with transaction(self.catalog.engine) as session:
            rows = session.exec(select(Sweep).where(Sweep.owner_id == user.id).order_by(col(Sweep.id))).all()
            return [sweep_public(session, row) for row in rows]

    # --- what the sweep's job reports -----------------------------------------------------------

    def record_epoch(self, session: Session, job: Job, message: dict[str, Any]) -> None:
        """A sweep job's report: a new attempt starts every run over; each run's epoch is kept once."""
        trainings = (job.request or {})["trainings"]
        if message.get("event") == "started":
            forget_epochs(session, trainings)
        elif message.get("event") == "epochs":
            keep_epochs(
                session, [(trainings[int(report["run"])], report["epoch"]) for report in message["runs"]]
            )

    def record(self, session: Session, job: Job, result: SweepResult, placed: builtins.list[str]) -> dict:
        """A sweep job's end: every run's candidate awaits its owner's decision."""
        request = job.request or {}
        ids = request["trainings"]
        rows = {t.id: t for t in session.exec(select(Training).where(col(Training.id).in_(ids)))}
        known: dict[int, set[int]] = defaultdict(set)
        for training_id, number in session.exec(
            select(Epoch.training_id, Epoch.epoch).where(col(Epoch.training_id).in_(ids))
        ):
            known[training_id].add(number)
        for training_id, run, candidate in zip(ids, result.runs, request["staged"], strict=True):
            training = rows.get(training_id)
            if training is None:
                raise Conflict(f"training {training_id} was deleted while its sweep ran")
            record_candidate(session, training, run, candidate, known[training_id])
        return {"sweep_id": job.sweep_id}
