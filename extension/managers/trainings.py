"""Trainings: start a transfer-learning run as a job, record its epochs, carry out the owner's decision.

A training never changes the model it started from (rule 3). Its job owns the run's state; the
training keeps only its decision's life (`stage`): "pending" until the job leaves a candidate, which
waits for a decision. `update` makes it the model's next version (owner only), `keep_both` makes it a
new model whose parent is the original, and `discard` deletes its weights but keeps the run's history.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Dataset, Epoch, Job, Training, User, now
from headstart.extension.managers.datasets import DatasetManager, check_name
from headstart.extension.managers.jobs import JobManager, job_public, new_key, progress_of
from headstart.extension.managers.models import current_version, model_public, version_ref
from headstart.kernels.errors import Conflict, Forbidden
from headstart.kernels.schemas import (
    UNFINISHED,
    Decision,
    EpochPublic,
    ModelPublic,
    TrainingConfig,
    TrainingPublic,
    TrainingStatus,
    check_choice,
)
from headstart.kernels.store import candidate_key
from headstart.kernels.tasks.artifacts import ModelFacts
from headstart.kernels.tasks.training import TrainInput, TrainResult, train

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog

# A pending training's status is its job's run state, in the training's words.
RUN_STATUS: dict[str, TrainingStatus] = {
    "queued": "running",
    "running": "running",
    "succeeded": "running",  # for the moment between the job's end and its candidate's record
    "failed": "failed",
    "cancelled": "cancelled",
}


def resources_of(config: TrainingConfig) -> dict[str, float] | None:
    """The Dask resources a training's job asks for: a GPU worker's `GPU=1` when `config.gpu`."""
    return {"GPU": 1} if config.gpu else None


def training_public(session: Session, training: Training, *, since: int = 0) -> TrainingPublic:
    """A training with its job and its epochs after epoch `since` (all of them by default)."""
    # The job first, then the training again: the job's end and the candidate are one commit, so a
    # job seen ended has its training's stage recorded (SQLite reads each statement afresh).
    job = _job_of(session, training)
    session.refresh(training)
    epochs = session.exec(
        select(Epoch)
        .where(Epoch.training_id == training.id, col(Epoch.epoch) > since)
        .order_by(col(Epoch.epoch))
    ).all()
    return public_of(training, job, epochs, session.get(User, training.owner_id))


def public_of(
    training: Training, job: Job | None, epochs: Sequence[Epoch], owner: User | None
) -> TrainingPublic:
    """A training as `training_public` answers it, from its rows read already: its job, epochs and owner."""
    state = job.state if job is not None else "failed"
    status = RUN_STATUS[state] if training.stage == "pending" else training.stage
    return TrainingPublic(
        **training.model_dump(),
        status=status,
        error=job.reason if job is not None and state == "failed" else None,
        finished_at=job.finished_at if job is not None else None,
        owner=owner.name if owner else "?",
        epochs=[EpochPublic(**e.model_dump()) for e in epochs],
        job=job_public(job) if job is not None else None,
    )


def _job_of(session: Session, training: Training) -> Job | None:
    """The training's job: its own, or its sweep's, which trains every run of the sweep."""
    mine = Job.training_id == training.id if training.sweep_id is None else Job.sweep_id == training.sweep_id
    return session.exec(select(Job).where(mine).order_by(col(Job.id).desc())).first()


def forget_epochs(session: Session, training_ids: builtins.list[int]) -> None:
    """A new attempt of a job starts its trainings' epochs over."""
    for old in session.exec(select(Epoch).where(col(Epoch.training_id).in_(training_ids))).all():
        session.delete(old)


def keep_epochs(session: Session, reports: builtins.list[tuple[int, dict[str, Any]]]) -> int:
    """Record reported epochs, (training id, figures) each, once: one query finds those recorded
    already, whatever the number of trainings. Returns how many were new."""
    kept = set(
        session.exec(
            select(Epoch.training_id, Epoch.epoch).where(
                col(Epoch.training_id).in_({training_id for training_id, _ in reports}),
                col(Epoch.epoch).in_({int(figures["epoch"]) for _, figures in reports}),
            )
        ).all()
    )
    new = 0
    for training_id, figures in reports:
        if (training_id, int(figures["epoch"])) not in kept:
            kept.add((training_id, int(figures["epoch"])))
            session.add(Epoch(training_id=training_id, **figures))
            new += 1
    return new


def record_candidate(
    session: Session,
    training: Training,
    result: TrainResult,
    candidate: str,
    known: set[int] | None = None,
) -> None:
    """A run's end: its candidate, staged under `candidate`, awaits the owner's decision.

    `known` is the numbers of the training's epochs recorded already, when the caller read them."""
    # Epochs a restart kept the service from hearing come with the result.
    if known is None:
        known = {e.epoch for e in session.exec(select(Epoch).where(Epoch.training_id == training.id))}
    for epoch in result.epochs:
        if epoch.epoch not in known:
            session.add(Epoch(training_id=training.id, **epoch.model_dump()))  # type: ignore[arg-type]
    training.stage = "candidate"
    training.candidate = candidate
    training.candidate_facts = result.candidate.model_dump()
    training.head = result.head
    training.feature_cache = result.feature_cache
    training.val_accuracy = result.val_accuracy
    session.add(training)


class TrainingManager:
    """Starts trainings as jobs, records their epochs and candidates, and applies decisions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def begin(
        self,
        user: User,
        model_id: int,
        dataset: int | str,
        config: TrainingConfig | None = None,
        *,
        watch: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainingPublic:
        """Record a training of a visible model's current version and queue its job; returns at once.

        A GPU training that no worker of the catalog's runner can take is refused (Invalid) before
        anything is recorded; the command line's runner runs it on this machine, with its GPU if any.
        """
        config = config or TrainingConfig()
        resources = resources_of(config)
        self.catalog.runner.require(resources)
        key = new_key("train")
        with transaction(self.catalog.engine) as session:
            model = access.get_visible_model(session, model_id, user)
            data = DatasetManager.row(session, dataset)
            version = current_version(session, model)
            training = Training(
                model_id=model.id,  # type: ignore[arg-type]
                model_version=version.version,
                dataset_id=data.id,  # type: ignore[arg-type]
                config=config.model_dump(),
                owner_id=user.id,  # type: ignore[arg-type]
            )
            session.add(training)
            session.flush()
            candidate = candidate_key(model.id, training.id)  # type: ignore[arg-type]
            given = TrainInput(
                store_url=self.catalog.store.url,
                ref=version_ref(model, version),
                dataset_id=data.id,
                config=config,
                candidate=candidate,
                limits=self.catalog.model_limits,
            )
            request: dict[str, Any] = {"epochs": config.epochs, "resources": resources, "staged": [candidate]}
            row = JobManager.create(
                session,
                user.id,  # type: ignore[arg-type]
                "train",
                key=key,
                training_id=training.id,
                request=request,
            )
            job = job_public(row)
            # The training as recorded, its job queued: read after the start, a quick job would
            # already be running, and the answer would depend on the race.
            recorded = training_public(session, training)
        self.catalog.jobs.start(job, train, given, resources=resources, watch=watch)
        return recorded

    def start(
        self,
        user: User,
        model_id: int,
        dataset: int | str,
        config: TrainingConfig | None = None,
        *,
        on_epoch: Callable[[dict], None] | None = None,
        on_features: Callable[[int, int], None] | None = None,
    ) -> TrainingPublic:
        """Train a copy of a visible model on a dataset and wait for its candidate: the command line's way.

        `on_epoch` gets each epoch's figures as it ends; `on_features(done, total)` follows the
        body's one pass over the images when the feature cache misses. A failed training raises its
        error; a cancelled one is returned.
        """

        features = progress_of("features", on_features)

        def watch(message: dict[str, Any]) -> None:
            if message.get("event") == "epoch" and on_epoch is not None:
                on_epoch(message["epoch"])
            if features is not None:
                features(message)

        training = self.begin(user, model_id, dataset, config, watch=watch)
        ended = self.catalog.jobs.wait(training.job.id)  # type: ignore[union-attr]
        if ended.job.state != "cancelled":
            ended.result()
        return self.get(user, training.id)

    def record_epoch(self, session: Session, job: Job, message: dict[str, Any]) -> None:
        """A train job's report: a new attempt starts over, and each epoch is kept once."""
        assert job.training_id is not None
        if message.get("event") == "started":
            forget_epochs(session, [job.training_id])
        elif message.get("event") == "epoch" and keep_epochs(session, [(job.training_id, message["epoch"])]):
            job.phase, job.done = "epochs", int(message["epoch"]["epoch"])
            job.total = int((job.request or {}).get("epochs", 0))

    def record(self, session: Session, job: Job, result: TrainResult, placed: list[str]) -> dict:
        """A train job's end: the candidate staged under its key awaits the owner's decision."""
        training = session.get(Training, job.training_id)
        if training is None:
            raise Conflict(f"training {job.training_id} was deleted while it ran")
        record_candidate(session, training, result, (job.request or {})["staged"][0])
        return {"training_id": training.id}

    def cancel(self, user: User, training_id: int) -> TrainingPublic:
        """Ask a training to stop at its next batch; it ends `cancelled` with its finished epochs."""
        training = self.get(user, training_id)
        if training.status != "running" or training.job is None or training.job.state not in UNFINISHED:
            raise Conflict(f"training {training_id} is {training.status}, not running")
        self.catalog.jobs.cancel(training.job)
        return training

    def get(self, user: User, training_id: int, *, since: int = 0) -> TrainingPublic:
        """A visible training, with its job's state and its epochs after epoch `since`."""
        with transaction(self.catalog.engine) as session:
            training = access.get_visible_training(session, training_id, user)
            return training_public(session, training, since=since)

    def list(self, user: User, *, model_id: int | None = None) -> builtins.list[TrainingPublic]:
        with transaction(self.catalog.engine) as session:
            query = select(Training).where(Training.owner_id == user.id).order_by(col(Training.id))
            if model_id is not None:
                query = query.where(Training.model_id == model_id)
            return [training_public(session, t) for t in session.exec(query).all()]

    def history(self, viewer: User, model_id: int) -> builtins.list[TrainingPublic]:
        """The trainings that made the versions of a visible model: its lineage."""
        with transaction(self.catalog.engine) as session:
            access.get_visible_model(session, model_id, viewer)
            query = select(Training).where(
                col(Training.result_model_id) == model_id,
                col(Training.stage).in_(["updated", "kept_both"]),
            )
            return [training_public(session, t) for t in session.exec(query.order_by(col(Training.id))).all()]

    def decide(
        self, user: User, training_id: int, decision: Decision | str, *, name: str | None = None
    ) -> ModelPublic | None:
        """Carry out the decision on a candidate; returns the model it updated or created."""
        check_choice(decision, Decision, "decision")
        store = self.catalog.store
        models = self.catalog.models
        with store.placing() as placed, transaction(self.catalog.engine) as session:
            training = access.get_visible_training(session, training_id, user)
            if training.stage != "candidate" or training.candidate is None:
                status = training_public(session, training).status
                raise Conflict(f"training {training_id} is {status}, not awaiting a decision")
            if training.candidate_facts is None and decision != "discard":
                raise Conflict(
                    f"training {training_id}'s candidate was made before candidates' facts were recorded; "
                    "discard it and train again"
                )
            model = access.get_visible_model(session, training.model_id, user)
            staged = training.candidate
            facts = ModelFacts(**training.candidate_facts) if training.candidate_facts else None
            result: ModelPublic | None = None
            if decision != "discard" and facts is None:  # refused above; said again for the type checker
                raise Conflict(f"training {training_id} has no candidate facts")
            if decision == "update" and facts is not None:
                if model.owner_id != user.id:
                    raise Forbidden(f"only the owner of model {model.id} may update it; use keep_both")
                if model.version != training.model_version:
                    raise Conflict(
                        f"model {model.id} moved to version {model.version} since this training started"
                    )
                version = model.version + 1
                models.add_version(session, model, version, facts, staged, placed, training_id=training.id)
                model.version = version
                model.kind = facts.kind
                model.labels = facts.labels
                model.updated_at = now()
                session.add(model)
                training.stage = "updated"
                training.result_model_id, training.result_version = model.id, version
                session.flush()
                result = model_public(session, model)
            elif decision == "keep_both" and facts is not None:
                dataset = session.get(Dataset, training.dataset_id)
                new = CatalogModel(
                    name=check_name(
                        name or f"{model.name} on {dataset.name if dataset else 'dataset'}", "model"
                    ),
                    description=f"Re-trained from model {model.id} v{training.model_version}.",
                    kind=facts.kind,
                    labels=facts.labels,
                    public=False,
                    version=1,
                    parent_id=model.id,
                    parent_version=training.model_version,
                    architecture=model.architecture,
                    owner_id=user.id,  # type: ignore[arg-type]
                )
                session.add(new)
                session.flush()
                models.add_version(session, new, 1, facts, staged, placed, training_id=training.id)
                training.stage = "kept_both"
                training.result_model_id, training.result_version = new.id, 1
                result = model_public(session, new)
            else:
                training.stage = "discarded"
            discarded = training.candidate if decision == "discard" else None
            training.candidate = None
            session.add(training)
        if discarded is not None:
            store.delete(discarded)
        if result is not None:
            self.catalog.refresh_card(result.id)
        return result
