"""Trainings: start a transfer-learning run, record its epochs, and carry out the owner's decision.

A training never changes the model it started from (rule 3). Its result is a candidate that waits
for a decision: `update` makes it the model's next version (owner only), `keep_both` makes it a new
model whose parent is the original, and `discard` deletes its weights but keeps the run's history.
"""

from __future__ import annotations

import builtins
import functools
import json
import threading
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Dataset, Epoch, Job, Training, User, now
from headstart.extension.jobs.artifacts import ModelFacts, VersionRef
from headstart.extension.jobs.progress import LocalReporter
from headstart.extension.jobs.training import result_key, staging_key, train_job
from headstart.extension.managers.datasets import DatasetManager, check_name
from headstart.extension.managers.jobs import LOST, UNFINISHED, JobManager, job_public, reason_of
from headstart.extension.managers.models import current_version, model_public, version_ref
from headstart.extension.store import candidate_key
from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.errors import Cancelled, Conflict, Forbidden
from headstart.kernels.schemas import (
    Decision,
    EpochPublic,
    ModelPublic,
    TrainingConfig,
    TrainingPublic,
    check_choice,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from headstart.extension.manager import Catalog

# train_job's arguments after the reporter-free head: job key, store URL, version, dataset, config, limits.
JobArguments = tuple[str, str, VersionRef, int, TrainingConfig, ModelLimits]


def resources_of(config: TrainingConfig) -> dict[str, float] | None:
    """The Dask resources a training's job asks for: a GPU worker's `GPU=1` when `config.gpu`."""
    return {"GPU": 1} if config.gpu else None


def training_public(session: Session, training: Training, *, since: int = 0) -> TrainingPublic:
    """A training with its job and its epochs after epoch `since` (all of them by default)."""
    epochs = session.exec(
        select(Epoch)
        .where(Epoch.training_id == training.id, col(Epoch.epoch) > since)
        .order_by(col(Epoch.epoch))
    ).all()
    owner = session.get(User, training.owner_id)
    job = _job_of(session, training.id)  # type: ignore[arg-type]
    return TrainingPublic(
        **training.model_dump(),
        owner=owner.name if owner else "?",
        epochs=[EpochPublic(**e.model_dump()) for e in epochs],
        job=job_public(job) if job is not None else None,
    )


def _job_of(session: Session, training_id: int) -> Job | None:
    return session.exec(
        select(Job).where(Job.training_id == training_id).order_by(col(Job.id).desc())
    ).first()


class TrainingManager:
    """Starts trainings, serves their epochs, and applies decisions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # One stop flag per training running in this process, for `cancel`.
        self._stops: dict[int, threading.Event] = {}
        catalog.jobs.listeners["train"] = self._epoch_reported

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
        """Train a copy of a visible model on a dataset and leave the result as a candidate.

        `on_epoch` gets each epoch's figures as it ends; `on_features(done, total)` follows the
        body's one pass over the images when the feature cache misses.
        """
        training = self.begin(user, model_id, dataset, config)
        return self.run(user, training.id, on_epoch=on_epoch, on_features=on_features)

    def begin(
        self, user: User, model_id: int, dataset: int | str, config: TrainingConfig | None = None
    ) -> TrainingPublic:
        """Record a training of a visible model's current version, and its queued job.

        A GPU training that no worker of the catalog's cluster can take is refused (Invalid) before
        anything is recorded; inline runs (no cluster) ignore `gpu`.
        """
        config = config or TrainingConfig()
        if self.catalog.runner is not None:
            self.catalog.runner.require(resources_of(config))
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
            JobManager.create(session, user.id, "train", training_id=training.id)  # type: ignore[arg-type]
            self._stops[training.id] = threading.Event()  # type: ignore[index]
            return training_public(session, training)

    def _job_arguments(self, user: User, training_id: int) -> tuple[Job, JobArguments, TrainingConfig]:
        with transaction(self.catalog.engine) as session:
            training = access.get_visible_training(session, training_id, user)
            job = _job_of(session, training_id)
            if training.status != "running" or job is None or job.state != "queued":
                raise Conflict(f"training {training_id} is {training.status}, not waiting to run")
            model = session.get(CatalogModel, training.model_id)
            if model is None:
                raise Conflict(f"the model of training {training_id} was deleted")
            ref = version_ref(model, current_version(session, model, training.model_version))
            config = TrainingConfig(**training.config)
            arguments: JobArguments = (
                job.key,
                self.catalog.store.url,
                ref,
                training.dataset_id,
                config,
                self.catalog.model_limits,
            )
            return job, arguments, config

    def run(
        self,
        user: User,
        training_id: int,
        *,
        on_epoch: Callable[[dict], None] | None = None,
        on_features: Callable[[int, int], None] | None = None,
    ) -> TrainingPublic:
        """Carry out a recorded training in this thread; a failure is recorded and raised."""
        job, arguments, _ = self._job_arguments(user, training_id)
        stop = self._stops.setdefault(training_id, threading.Event())

        def relay(message: dict) -> None:
            self.catalog.jobs.received(job.id, message)  # type: ignore[arg-type]
            if message.get("event") == "epoch" and on_epoch is not None:
                on_epoch(message["epoch"])
            if message.get("event") == "progress" and message.get("phase") == "features" and on_features:
                on_features(message["done"], message["total"])

        try:
            result = train_job(*arguments, reporter=LocalReporter(relay, stop))
        except Cancelled as error:
            self._ended(training_id, int(job.id), "cancelled", error)  # type: ignore[arg-type]
        except BaseException as error:
            self._ended(training_id, int(job.id), "failed", error)  # type: ignore[arg-type]
            raise
        else:
            self._ended(training_id, int(job.id), "succeeded", result)  # type: ignore[arg-type]
        finally:
            self._stops.pop(training_id, None)
        return self.get(user, training_id)

    def submit(self, user: User, training_id: int) -> None:
        """Carry out a recorded training as a job on the catalog's cluster; returns at once."""
        runner = self.catalog.runner
        job, arguments, config = self._job_arguments(user, training_id)
        self._stops.pop(training_id, None)
        try:
            runner.submit(
                job.key,
                train_job,
                *arguments,
                on_event=functools.partial(self.catalog.jobs.received, job.id),  # type: ignore[arg-type]
                on_done=functools.partial(self._ended, training_id, job.id),  # type: ignore[arg-type]
                resources=resources_of(config),
            )
        except BaseException as error:
            # Nothing runs, so nothing may stay `running`: the training and its job fail now.
            self._ended(training_id, int(job.id), "failed", error)  # type: ignore[arg-type]
            raise

    def _epoch_reported(self, job: Job, message: dict) -> None:
        """A train job's report (on the jobs' thread): a new attempt starts over, epochs are kept."""
        with transaction(self.catalog.engine) as session:
            if message.get("event") == "started":
                for old in session.exec(select(Epoch).where(Epoch.training_id == job.training_id)).all():
                    session.delete(old)
            elif message.get("event") == "epoch":
                figures = message["epoch"]
                seen = session.exec(
                    select(Epoch).where(Epoch.training_id == job.training_id, Epoch.epoch == figures["epoch"])
                ).first()
                if seen is None:
                    session.add(Epoch(training_id=job.training_id, **figures))  # type: ignore[arg-type]
                    current, training = session.get(Job, job.id), session.get(Training, job.training_id)
                    if current is not None and training is not None:
                        # The stored config is a whole TrainingConfig.model_dump(): epochs is there.
                        current.phase, current.done = "epochs", int(figures["epoch"])
                        current.total = int(training.config["epochs"])
                        session.add(current)

    def _ended(self, training_id: int, job_id: int, state: str, value: Any) -> None:
        """Record a training job's end: the candidate placed, or nothing left behind."""
        store = self.catalog.store
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            key = job.key if job is not None else ""
        if state == "succeeded":
            try:
                self._place_candidate(training_id, key, value)
            except BaseException as error:
                state, value = "failed", error
                self.catalog.log.error("training %s: its result could not be recorded", training_id)
        if state != "succeeded":
            for leftover in (staging_key(key), result_key(key)):
                store.delete(leftover)
            status = "cancelled" if state == "cancelled" else "failed"
            self._finish(training_id, status, None if state == "cancelled" else reason_of(value))
        self.catalog.jobs.finish(job_id, state, None if state == "succeeded" else reason_of(value))

    def _place_candidate(self, training_id: int, key: str, result: dict) -> None:
        store = self.catalog.store
        with transaction(self.catalog.engine) as session:
            training = session.get(Training, training_id)
            if training is None:
                raise Conflict(f"training {training_id} was deleted while it ran")
            model_id = training.model_id
        candidate = candidate_key(model_id, training_id)
        with store.placing() as placed, transaction(self.catalog.engine) as session:
            done = session.get(Training, training_id)
            if done is None:
                raise Conflict(f"training {training_id} was deleted while it ran")
            # Epochs a restart kept the service from hearing come with the result.
            known = {e.epoch for e in session.exec(select(Epoch).where(Epoch.training_id == training_id))}
            for figures in result["epochs"]:
                if figures["epoch"] not in known:
                    session.add(Epoch(training_id=training_id, **figures))
            store.commit(store.path(result_key(key)), candidate)
            placed.append(candidate)
            done.status = "candidate"
            done.candidate = candidate
            done.head = result["head"]
            done.feature_cache = result["feature_cache"]
            done.finished_at = now()
            session.add(done)

    def _finish(self, training_id: int, status: str, error: str | None) -> None:
        with transaction(self.catalog.engine) as session:
            training = session.get(Training, training_id)
            if training is not None and training.status == "running":
                training.status = status
                training.error = error
                training.finished_at = now()
                session.add(training)

    def reattach(self) -> tuple[int, int]:
        """After a service start: follow the training jobs the cluster still runs, fail the rest.

        Also fails trainings left `running` with no job at all. Returns (re-attached, lost).
        """
        runner = self.catalog.runner

        def follow(job: Job) -> bool:
            if job.kind != "train" or job.training_id is None:
                return False
            with transaction(self.catalog.engine) as session:
                training = session.get(Training, job.training_id)
                resources = resources_of(TrainingConfig(**training.config)) if training else None
            return bool(
                runner.attach(
                    job.key,
                    on_event=functools.partial(self.catalog.jobs.received, job.id),  # type: ignore[arg-type]
                    on_done=functools.partial(self._ended, job.training_id, job.id),  # type: ignore[arg-type]
                    resources=resources,
                )
            )

        attached, lost = self.catalog.jobs.reattach(follow)
        with transaction(self.catalog.engine) as session:
            running = session.exec(select(Training).where(col(Training.status) == "running")).all()
            jobs = {t.id: _job_of(session, t.id) for t in running}  # type: ignore[arg-type]
            orphans = [tid for tid, job in jobs.items() if job is None or job.state not in UNFINISHED]
        for training_id in orphans:
            self._finish(training_id, "failed", LOST)  # type: ignore[arg-type]
        return attached, lost

    def cancel(self, user: User, training_id: int) -> TrainingPublic:
        """Ask a training to stop at its next batch; it ends `cancelled` with its finished epochs."""
        training = self.get(user, training_id)
        if training.status != "running" or training.job is None or training.job.state not in UNFINISHED:
            raise Conflict(f"training {training_id} is {training.status}, not running")
        stop = self._stops.get(training_id)
        if stop is not None:
            stop.set()  # running in this process
        elif self.catalog.runner is not None:
            self.catalog.runner.cancel(training.job.key)
        else:
            raise Conflict(f"training {training_id} is not running in this process")
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
                col(Training.status).in_(["updated", "kept_both"]),
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
            if training.status != "candidate" or training.candidate is None:
                raise Conflict(f"training {training_id} is {training.status}, not awaiting a decision")
            model = access.get_visible_model(session, training.model_id, user)
            staged = store.path(training.candidate)
            facts = ModelFacts(**json.loads((staged / "facts.json").read_text()))
            result: ModelPublic | None = None
            if decision == "update":
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
                training.status = "updated"
                training.result_model_id, training.result_version = model.id, version
                session.flush()
                result = model_public(session, model)
            elif decision == "keep_both":
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
                training.status = "kept_both"
                training.result_model_id, training.result_version = new.id, 1
                result = model_public(session, new)
            else:
                training.status = "discarded"
            discarded = training.candidate if decision == "discard" else None
            training.candidate = None
            session.add(training)
        if discarded is not None:
            store.delete(discarded)
        if result is not None:
            self.catalog.refresh_card(result.id)
        return result
