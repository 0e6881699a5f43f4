"""The catalog's tables: the API's facts (`kernels.schemas`) as the service stores them.

Status fields are plain strings here and typed by their Literals in the API types, which validate
every row they are built from; a test checks that each API field has its column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlmodel import Field, SQLModel


def now() -> datetime:
    return datetime.now(UTC)


def json_column() -> Any:
    """A JSON column for lists and dicts; portable between SQLite and PostgreSQL."""
    return Field(default=None, sa_column=Column(JSON))


class Revision(SQLModel, table=True):
    """How many committed transactions changed one family of the rows that readers keep.

    The families (`catalog.database.FAMILIES`) are the models (users, models and their versions, from
    which lists and shows are built), the datasets and the evaluations. A transaction that adds,
    changes or deletes rows of a family adds one to its row (`catalog.database.CatalogSession`), so a
    reader keeps what it built from a family until that number moves, whichever process made the
    change: an ingest does not throw away the models' snapshot.
    """

    __tablename__ = "revisions"

    family: str = Field(primary_key=True, max_length=32)
    number: int = 0


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=255)
    created_at: datetime = Field(default_factory=now)


def label_key(labels: list[str] | None) -> str | None:
    """The label set as one comparable string: models with the same key are of the same type."""
    return None if not labels else "\x1f".join(sorted(labels))


class CatalogModel(SQLModel, table=True):
    """A model in the catalog; `version` is its current version."""

    __tablename__ = "models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    description: str = ""
    kind: str = "classifier"
    labels: list[str] | None = json_column()
    public: bool = False
    version: int = 1
    parent_id: int | None = Field(default=None, foreign_key="models.id", ondelete="SET NULL")
    parent_version: int | None = None
    architecture: str | None = None
    seed: int | None = None  # what the starting weights were seeded with (ModelPublic.seed)
    weights_source: str | None = None  # where pretrained starting weights came from
    owner_id: int = Field(foreign_key="users.id", index=True)
    # Kept equal to label_key(labels) by the listener below, so lists filter by type in SQL.
    label_set: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)


class ModelVersion(SQLModel, table=True):
    """One stored version of a model: a full `.keras` file, or a head plus a shared body."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE", index=True)
    version: int
    params: int
    size_bytes: int
    kind: str
    labels: list[str] | None = json_column()
    body_sha: str | None = None
    training_id: int | None = None
    artifact: str  # store key of model.keras, or of head.keras when body_ref is set
    body_ref: str | None = None  # sha256 of a shared body under bodies/, for frozen-body results
    # sha256 of the artifact file; with body_ref it names the version's content (None before 0009).
    content_sha: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=now)


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=255)
    description: str = ""
    labels: list[str] = json_column()
    counts: dict[str, int] = json_column()
    resize_policy: str = "center_crop"
    split_policy: str = "stratified-hash"
    skipped: list[dict] = json_column()
    created_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=now)


class Training(SQLModel, table=True):
    __tablename__ = "trainings"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE", index=True)
    model_version: int
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    config: dict = json_column()  # a whole TrainingConfig.model_dump()
    # The decision's life alone: "pending" until the job leaves a candidate, then "candidate",
    # "updated", "kept_both" or "discarded". The run's state, error and end are its job's, and
    # TrainingPublic.status is derived from both.
    stage: str = "pending"
    head: str = "kept"
    feature_cache: str | None = None
    result_model_id: int | None = None
    result_version: int | None = None
    candidate_facts: dict | None = json_column()  # the candidate's ModelFacts, from the job's result
    owner_id: int = Field(foreign_key="users.id", index=True)
    candidate: str | None = None  # store key of the candidate's folder while it awaits a decision
    val_accuracy: float | None = None  # the candidate's, from the job's result
    sweep_id: int | None = Field(default=None, foreign_key="sweeps.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=now)


class Sweep(SQLModel, table=True):
    """Heads of one model version trained on one dataset's cached features, in one job; each of its
    runs is a training with its own candidate."""

    __tablename__ = "sweeps"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE", index=True)
    model_version: int
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    grid: dict = json_column()  # the SweepGrid asked for
    draws: int | None = None
    owner_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=now)


class Job(SQLModel, table=True):
    """A job on the cluster; `key` is its Dask key, so a restarted service can find it again."""

    __tablename__ = "jobs"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(default="", index=True)
    kind: str  # a JobKind
    state: str = "queued"  # a JobState
    reason: str | None = None
    error: dict | None = json_column()  # why it failed, as an API error body: {"error", "detail", "items"}
    training_id: int | None = Field(default=None, foreign_key="trainings.id", ondelete="CASCADE")
    sweep_id: int | None = Field(default=None, foreign_key="sweeps.id", ondelete="CASCADE")
    worker: str | None = None
    attempts: int = 0
    phase: str | None = None
    done: int = 0
    total: int = 0
    # What the recorder needs besides the task's result, and the store keys to clean up (`staged`
    # unless it succeeded, `uploads` at its end); never shown.
    request: dict | None = json_column()
    result: dict | None = json_column()  # what a succeeded job made: {"dataset_id": 3}, ...
    owner_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Epoch(SQLModel, table=True):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("training_id", "epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    training_id: int = Field(foreign_key="trainings.id", ondelete="CASCADE", index=True)
    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluations"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", ondelete="CASCADE", index=True)
    model_version: int
    dataset_id: int | None = Field(default=None, foreign_key="datasets.id", index=True)
    split: str | None = None
    comparable: bool = True
    accuracy: float | None = None
    loss: float | None = None
    count: int = 0
    result: dict = json_column()  # the whole EvaluationResult, every prediction included
    requested_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=now)


class Probe(SQLModel, table=True):
    """A transfer-benchmark cell: the standard linear probe of one body version (its sha) on one
    dataset, computed once. Bodies are named by their content and datasets never change, so a cell
    stands for good; a changed body is another sha and so another row."""

    __tablename__ = "probes"
    __table_args__ = (UniqueConstraint("body_sha", "dataset_id"),)

    id: int | None = Field(default=None, primary_key=True)
    body_sha: str = Field(max_length=64, index=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    comparable: bool = True
    accuracy: float | None = None
    count: int = 0
    note: str = ""
    result: dict = json_column()  # the probe's EvaluationResult: per-class figures and confusion
    requested_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=now)


@event.listens_for(CatalogModel, "before_insert")
@event.listens_for(CatalogModel, "before_update")
def _keep_label_set(_mapper: object, _connection: object, model: CatalogModel) -> None:
    model.label_set = label_key(model.labels)
