"""Trainings: start a transfer-learning run, record its epochs, and carry out the owner's decision.

A training never changes the model it started from (rule 3). Its result is a candidate that waits
for a decision: `update` makes it the model's next version (owner only), `keep_both` makes it a new
model whose parent is the original, and `discard` deletes its weights but keeps the run's history.
"""

from __future__ import annotations

import builtins
import json
import threading
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Dataset, Epoch, Training, User, now
from headstart.extension.jobs.artifacts import ModelFacts
from headstart.extension.jobs.training import train_version
from headstart.extension.managers.datasets import DatasetManager, check_name
from headstart.extension.managers.models import current_version, model_public, version_ref
from headstart.extension.store import candidate_key
from headstart.kernels.errors import Cancelled, Conflict, Forbidden, HeadstartError, Invalid
from headstart.kernels.schemas import Decision, EpochPublic, ModelPublic, TrainingConfig, TrainingPublic

if TYPE_CHECKING:
    from collections.abc import Callable

    from headstart.extension.manager import Catalog

DECISIONS = ("update", "keep_both", "discard")


def training_public(session: Session, training: Training) -> TrainingPublic:
    epochs = session.exec(
        select(Epoch).where(Epoch.training_id == training.id).order_by(col(Epoch.epoch))
    ).all()
    owner = session.get(User, training.owner_id)
    return TrainingPublic(
        **training.model_dump(),
        owner=owner.name if owner else "?",
        epochs=[EpochPublic(**e.model_dump()) for e in epochs],
    )


class TrainingManager:
    """Starts trainings, serves their epochs, and applies decisions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # One stop flag per training running in this process, for `cancel`.
        self._stops: dict[int, threading.Event] = {}

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
        """Record a training of a visible model's current version, to be carried out by `run`."""
        config = config or TrainingConfig()
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
            self._stops[training.id] = threading.Event()  # type: ignore[index]
            return training_public(session, training)

    def run(
        self,
        user: User,
        training_id: int,
        *,
        on_epoch: Callable[[dict], None] | None = None,
        on_features: Callable[[int, int], None] | None = None,
    ) -> TrainingPublic:
        """Carry out a recorded training; a failure is recorded on the training and raised."""
        with transaction(self.catalog.engine) as session:
            training = access.get_visible_training(session, training_id, user)
            if training.status != "running" or training.finished_at is not None:
                raise Conflict(f"training {training_id} is {training.status}, not waiting to run")
            model = session.get(CatalogModel, training.model_id)
            if model is None:
                raise Conflict(f"the model of training {training_id} was deleted")
            ref = version_ref(model, current_version(session, model, training.model_version))
            config = TrainingConfig(**training.config)
            model_id, dataset_id = training.model_id, training.dataset_id
        stop = self._stops.setdefault(training_id, threading.Event())

        def record_epoch(epoch: dict) -> None:
            with transaction(self.catalog.engine) as session:
                session.add(Epoch(training_id=training_id, **epoch))
            if on_epoch is not None:
                on_epoch(epoch)
            if stop.is_set():
                raise Cancelled(f"training {training_id} was cancelled")

        store = self.catalog.store
        try:
            with store.staging() as folder:
                facts = train_version(
                    store.url,
                    ref,
                    dataset_id,
                    config,
                    folder,
                    self.catalog.model_limits,
                    on_epoch=record_epoch,
                    on_features=on_features,
                )
                (folder / "facts.json").write_text(json.dumps(_facts_json(facts.candidate)))
                key = candidate_key(model_id, training_id)
                with store.placing() as placed, transaction(self.catalog.engine) as session:
                    done = session.get(Training, training_id)
                    if done is None:
                        raise Conflict(f"training {training_id} was deleted while it ran")
                    store.commit(folder, key)
                    placed.append(key)
                    done.status = "candidate"
                    done.candidate = key
                    done.head = facts.head
                    done.feature_cache = facts.feature_cache
                    done.finished_at = now()
                    session.add(done)
        except Cancelled:
            self._finish(training_id, "cancelled", None)
        except BaseException as error:
            message = str(error) if isinstance(error, HeadstartError) else f"{type(error).__name__}: {error}"
            self._finish(training_id, "failed", message[:2000])
            raise
        finally:
            self._stops.pop(training_id, None)
        return self.get(user, training_id)

    def _finish(self, training_id: int, status: str, error: str | None) -> None:
        with transaction(self.catalog.engine) as session:
            training = session.get(Training, training_id)
            if training is not None:
                training.status = status
                training.error = error
                training.finished_at = now()
                session.add(training)

    def fail_interrupted(self, reason: str) -> int:
        """Mark every training still `running` but not running here as failed; returns how many.

        Only the process that owns the catalog's trainings (the service) may call this.
        """
        with transaction(self.catalog.engine) as session:
            stale = session.exec(
                select(Training).where(
                    col(Training.status) == "running", col(Training.id).not_in(list(self._stops))
                )
            ).all()
            for training in stale:
                training.status = "failed"
                training.error = reason
                training.finished_at = now()
                session.add(training)
            return len(stale)

    def cancel(self, user: User, training_id: int) -> TrainingPublic:
        """Ask a running training to stop after its current epoch; it ends as `cancelled`."""
        training = self.get(user, training_id)
        stop = self._stops.get(training_id)
        if training.status != "running" or stop is None:
            raise Conflict(f"training {training_id} is {training.status}, not running")
        stop.set()
        return training

    def get(self, user: User, training_id: int) -> TrainingPublic:
        with transaction(self.catalog.engine) as session:
            return training_public(session, access.get_visible_training(session, training_id, user))

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
        if decision not in DECISIONS:
            raise Invalid(f"unknown decision {decision!r}; choose one of {', '.join(DECISIONS)}")
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


def _facts_json(facts: ModelFacts) -> dict:
    return {
        "kind": facts.kind,
        "labels": facts.labels,
        "params": facts.params,
        "size_bytes": facts.size_bytes,
        "body_sha": facts.body_sha,
        "body_ref": facts.body_ref,
    }
