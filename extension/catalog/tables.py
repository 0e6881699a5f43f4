"""The catalog's tables. Each inherits its fields from the shared API type in `kernels.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import UniqueConstraint, event
from sqlmodel import Field, SQLModel

from headstart.kernels.schemas import (
    DatasetBase,
    EpochBase,
    EvaluationBase,
    JobBase,
    ModelBase,
    ModelVersionBase,
    TrainingBase,
    UserBase,
)


def now() -> datetime:
    return datetime.now(UTC)


class Revision(SQLModel, table=True):
    """One row counting the catalog's committed changes to what lists, shows and boards serve.

    Every transaction that adds, changes or deletes a user, model, version, dataset or evaluation
    adds one (`catalog.database.CatalogSession`), so a reader can keep what it built until the
    number moves, whichever process made the change.
    """

    __tablename__ = "revision"

    id: int = Field(default=1, primary_key=True)
    number: int = 0


class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=now)


def label_key(labels: list[str] | None) -> str | None:
    """The label set as one comparable string: models with the same key are of the same type."""
    return None if not labels else "\x1f".join(sorted(labels))


class CatalogModel(ModelBase, table=True):
    """A model in the catalog; `version` is its current version."""

    __tablename__ = "models"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    # Kept equal to label_key(labels) by the listener below, so lists filter by type in SQL.
    label_set: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)


class ModelVersion(ModelVersionBase, table=True):
    """One stored version of a model: a full `.keras` file, or a head plus a shared body."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE", index=True)
    artifact: str  # store key of model.keras, or of head.keras when body_ref is set
    body_ref: str | None = None  # sha256 of a shared body under bodies/, for frozen-body results
    created_at: datetime = Field(default_factory=now)


class Dataset(DatasetBase, table=True):
    __tablename__ = "datasets"

    id: int | None = Field(default=None, primary_key=True)
    created_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=now)


class Training(TrainingBase, table=True):
    __tablename__ = "trainings"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    candidate: str | None = None  # store key of the candidate's folder while it awaits a decision
    created_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None


class Job(JobBase, table=True):
    """A job on the cluster; `key` is its Dask key, so a restarted service can find it again."""

    __tablename__ = "jobs"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(default="", index=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Epoch(EpochBase, table=True):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("training_id", "epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    training_id: int = Field(foreign_key="trainings.id", ondelete="CASCADE", index=True)


class Evaluation(EvaluationBase, table=True):
    __tablename__ = "evaluations"

    id: int | None = Field(default=None, primary_key=True)
    requested_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=now)


@event.listens_for(CatalogModel, "before_insert")
@event.listens_for(CatalogModel, "before_update")
def _keep_label_set(_mapper: object, _connection: object, model: CatalogModel) -> None:
    model.label_set = label_key(model.labels)
