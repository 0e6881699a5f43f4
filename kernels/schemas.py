"""The API's types: what the catalog service answers and takes, shared with its clients.

Plain pydantic, with every status field typed by the Literal that names its values. How the service
stores these facts (keys, indexes, JSON columns) is `extension/catalog/tables.py`'s business, and a
test checks that every field here has its column there.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from headstart.kernels.errors import Invalid

Kind = Literal["classifier", "feature_vector"]
Decision = Literal["update", "keep_both", "discard"]
TrainingStatus = Literal["running", "candidate", "updated", "kept_both", "discarded", "failed", "cancelled"]
HeadHandling = Literal["kept", "replaced"]
FeatureCacheState = Literal["hit", "miss"]
Split = Literal["train", "val", "test"]
JobKind = Literal["ingest", "create", "validate", "train", "sweep", "evaluate", "export", "probe"]
# A transfer-benchmark cell: scored, its probe job queued or running, or its job failed.
CellState = Literal["scored", "pending", "failed"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# The states of a job that has not ended yet.
UNFINISHED: tuple[JobState, ...] = ("queued", "running")
# What a model download is written as: the `.keras` file itself, or a zip of TensorFlow's SavedModel
# or TFLite file with the model's labels.txt (kernels/engine/export.py).
ExportFormat = Literal["keras", "saved_model", "tflite"]


def check_choice(value: str, choices: Any, what: str) -> str:
    """`value` if the Literal `choices` names it, else Invalid saying which values it names."""
    allowed = get_args(choices)
    if value not in allowed:
        raise Invalid(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return value


def download_suffix(format: str) -> str:
    """The suffix of a download in `format`: `.keras`, or `.zip` for the formats of TensorFlow's."""
    return ".keras" if check_choice(format, ExportFormat, "format") == "keras" else ".zip"


def check_download_file(dest: PurePath, format: str) -> None:
    """Invalid unless `dest` is a file name with the suffix of a download in `format`."""
    suffix = download_suffix(format)
    if dest.suffix != suffix:
        what = "the download" if format == "keras" else f"a {format} download (a zip with labels.txt)"
        raise Invalid(f"{what} must be written to a {suffix} file, not {dest.name!r}")


def download_name(model_id: int, version: int, format: str = "keras") -> str:
    """A download's file name: `model-3-v2.keras`, `model-3-v2-tflite.zip`."""
    tail = "" if format == "keras" else f"-{format}"
    return f"model-{int(model_id)}-v{int(version)}{tail}{download_suffix(format)}"


Schema = TypeVar("Schema", bound=BaseModel)


def build(schema: type[Schema], **fields: Any) -> Schema:
    """A request body, with a schema violation reported as Invalid, as the service answers it."""
    try:
        return schema(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise Invalid(problems, detail=error.errors(include_url=False)) from None


# The zoo's names, here so that clients can offer them without importing Keras.
ARCHITECTURE_NAMES = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "resnet50",
    "small_cnn",
)
# Seeds are what NumPy's legacy seeding takes, which keras.utils.set_random_seed calls.
MAX_SEED = 2**32 - 1
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


class TrainingConfig(BaseModel):
    """How one transfer-learning run trains; stored with the training."""

    model_config = ConfigDict(extra="forbid")

    optimizer: str = Field("adam", description=f"one of {', '.join(OPTIMIZERS)}")
    learning_rate: float = Field(1e-3, gt=0, le=10)
    loss: str = Field("sparse_categorical_crossentropy", description=f"one of {', '.join(LOSSES)}")
    epochs: int = Field(30, ge=1, le=1000, description="the most epochs to run")
    batch_size: int = Field(32, ge=1, le=4096)
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of each target spread evenly over all labels (Keras' label_smoothing)",
    )
    fine_tune_layers: int | Literal["all"] = Field(
        0, description="body layers to unfreeze, counted from the end; 0 trains the head only"
    )
    early_stopping_patience: int | None = Field(
        5,
        ge=1,
        description="stop after this many epochs without a better val loss (the training loss when "
        "there is no val split), keeping the best epoch's weights; None runs every epoch",
    )
    seed: int = 0
    gpu: bool = Field(
        False,
        description="run on a GPU worker (submitted with the Dask resource GPU=1); inline runs ignore it",
    )

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if value.lower() not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)}")
        return value.lower()

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        if value not in LOSSES:
            raise ValueError(f"unknown loss {value!r}; choose one of {', '.join(LOSSES)}")
        return value

    @field_validator("fine_tune_layers")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("fine_tune_layers must be 0 or more, or 'all'")
        return value

    @property
    def frozen_body(self) -> bool:
        return self.fine_tune_layers == 0


class ModelPublic(BaseModel):
    """A model as the API shows it: its current version's facts, with its owner's name."""

    id: int
    name: str
    description: str = ""
    kind: Kind = "classifier"
    labels: list[str] | None = None
    public: bool = False
    version: int = 1
    parent_id: int | None = None
    parent_version: int | None = None
    architecture: str | None = None
    # What `models.create` seeded the starting weights with, so the same create builds the same
    # model again. None for uploads and for models kept from a training (its config has the seed).
    seed: int | None = None
    # Where its pretrained starting weights came from: "keras download", "weights folder <file>" or
    # "package <name> <version>". None for random starting weights and for uploads.
    weights_source: str | None = None
    owner: str
    params: int
    size_bytes: int
    input_contract: dict = {"shape": [224, 224, 3], "range": [0, 255], "dtype": "float32"}
    created_at: datetime
    updated_at: datetime


class ModelVersionPublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: int
    version: int
    params: int
    size_bytes: int
    kind: Kind
    labels: list[str] | None = None
    body_sha: str | None = None
    training_id: int | None = None
    created_at: datetime


class DatasetPublic(BaseModel):
    id: int
    name: str
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    resize_policy: str = "center_crop"
    split_policy: str = "stratified-hash"
    skipped: list[dict] = Field(default_factory=list)
    created_by: str
    created_at: datetime


class EpochPublic(BaseModel):
    """One epoch's figures, as the training reported them when the epoch ended."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0


class JobPublic(BaseModel):
    """A heavy step carried out on a Dask worker: its state, and its progress as the worker reports it."""

    id: int
    key: str  # the Dask key, "headstart-<kind>-<id>-<random>"
    kind: JobKind
    state: JobState = "queued"
    reason: str | None = None  # why it failed or was cancelled
    # A failed job's error as the API's error body has it: {"error": "invalid", "detail": ..., "items"}.
    error: dict | None = None
    training_id: int | None = None
    sweep_id: int | None = None
    worker: str | None = None  # the Dask worker that ran its last attempt
    attempts: int = 0
    phase: str | None = None  # what it is doing: "ingest", "features", "epochs", "evaluate", "export"
    done: int = 0
    total: int = 0
    result: dict | None = None  # what a succeeded job made: {"dataset_id": 3}, {"model_id": 7}, ...
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingPublic(BaseModel):
    """A training: while its job runs, `status`, `error` and `finished_at` are the job's; once the job
    has left a candidate, `status` follows the owner's decision."""

    model_config = ConfigDict(protected_namespaces=())

    id: int
    model_id: int
    model_version: int
    dataset_id: int
    config: dict = Field(default_factory=dict)
    status: TrainingStatus = "running"
    head: HeadHandling = "kept"  # "kept" when the labels match, "replaced" when a fresh head was added
    feature_cache: FeatureCacheState | None = None  # None when the body trains
    result_model_id: int | None = None
    result_version: int | None = None
    error: str | None = None
    owner: str
    created_at: datetime
    finished_at: datetime | None
    epochs: list[EpochPublic] = []
    job: JobPublic | None = None
    # The candidate's val accuracy: that of the epoch whose weights it kept (the lowest val loss's
    # under early stopping, else the last). None before the candidate, or without a val split.
    val_accuracy: float | None = None
    sweep_id: int | None = None


class EvaluationPublic(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: int
    model_id: int
    model_version: int
    dataset_id: int | None = None
    split: Split | None = None
    comparable: bool = True
    accuracy: float | None = None
    loss: float | None = None
    count: int = 0
    result: dict | None = None
    created_at: datetime


class LeaderboardRow(BaseModel):
    """One model version's platform-scored result on a dataset's test split."""

    rank: int | None
    model_id: int
    model_name: str
    owner: str
    version: int
    public: bool
    comparable: bool
    accuracy: float | None
    loss: float | None
    count: int
    note: str = ""
    pending: bool = False  # not scored yet: its evaluation is queued, and it is not ranked


class BenchmarkModel(BaseModel):
    """A visible model that carries a benchmarked body (its current version does)."""

    id: int
    name: str
    owner: str
    kind: Kind


class BenchmarkCell(BaseModel):
    """One body on one dataset: the standard linear probe's test accuracy (kernels/engine/probe.py)."""

    dataset_id: int
    dataset: str
    state: CellState
    accuracy: float | None = None
    count: int = 0  # test images scored
    rank: float | None = None  # among the rows on this dataset, 1 the best; ties share the mean rank
    job_id: int | None = None  # the probe job that computes it, while pending or once failed
    note: str = ""


class BenchmarkRow(BaseModel):
    """One body and its cells, one per dataset in the table's order."""

    body: str  # the body's sha256: a body version
    name: str  # the first visible model that carries it
    architecture: str | None = None
    weights_source: str | None = None
    models: list[BenchmarkModel]
    mean_rank: float | None = None  # over the datasets it is scored on; rows are ordered by it
    cells: list[BenchmarkCell]


class BenchmarkPublic(BaseModel):
    """The transfer benchmark: every body you may see by every dataset, best mean rank first."""

    datasets: list[str]
    rows: list[BenchmarkRow]
    pending: int  # cells whose probe job has not ended


class BenchmarkCellPublic(BaseModel):
    """One cell with its per-class figures: precision, recall and support per label, and the
    confusion matrix (rows true, columns predicted), as evaluations give them."""

    body: str
    name: str
    cell: BenchmarkCell
    labels: list[str]
    per_class: list[dict[str, Any]] = Field(default_factory=list)
    confusion: list[list[int]] = Field(default_factory=list)
    probe: str = ""  # how the cell was computed


# --- requests: what the REST API takes ------------------------------------------------------


class ModelCreate(BaseModel):
    """Create a model from the zoo."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    architecture: str
    labels: list[str] | None = Field(None, description="a classifier's labels; none makes a feature vector")
    weights: Literal["imagenet"] | None = "imagenet"
    imagenet_head: bool = Field(
        False,
        description="keep the pretrained ImageNet classifier (1000 labels) instead of giving labels; "
        "for architectures whose weights carry it (efficientnet_lite0, 1 and 2)",
    )
    options: dict[str, int | float] = Field(default_factory=dict, description="alpha, filters")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seeds the starting weights: the same seed builds the same model"
    )
    description: str = ""
    public: bool = False


class ModelUpdate(BaseModel):
    """Rename, describe, publish or unpublish a model; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    public: bool | None = None


class TrainingCreate(BaseModel):
    """Start a transfer-learning run of a model's current version on a dataset."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: int
    dataset: int | str
    config: TrainingConfig = Field(default_factory=TrainingConfig)


class SweepGrid(BaseModel):
    """The values a sweep tries: every combination of the lists given, or `draws` of them at random.

    A field left out takes the sweep's base config's value.
    """

    model_config = ConfigDict(extra="forbid")

    learning_rate: list[float] | None = None
    epochs: list[int] | None = None
    optimizer: list[str] | None = None
    batch_size: list[int] | None = None
    label_smoothing: list[float] | None = None


class SweepCreate(BaseModel):
    """Train many heads of a model on one dataset's cached features, in one job."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: int
    dataset: int | str
    grid: SweepGrid
    draws: int | None = Field(None, ge=1, description="train this many combinations, drawn at random")
    config: TrainingConfig = Field(
        default_factory=TrainingConfig, description="the base: what every head shares besides the grid"
    )


class SweepPublic(BaseModel):
    """A sweep: its grid, its job, and its runs (trainings), best val accuracy first."""

    model_config = ConfigDict(protected_namespaces=())

    id: int
    model_id: int
    model_version: int
    dataset_id: int
    grid: SweepGrid
    draws: int | None = None
    owner: str
    created_at: datetime
    job: JobPublic | None = None
    runs: list[TrainingPublic] = []


class DecisionRequest(BaseModel):
    """The owner's decision on a training's candidate."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    name: str | None = Field(None, min_length=1, max_length=255, description="the new model's, for keep_both")


class EvaluationRequest(BaseModel):
    """Score a model version on a dataset split."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: int
    dataset: int | str
    split: Split = "test"
    version: int | None = None
    top_k: int = Field(3, ge=1, le=100)


class Page(BaseModel):
    """One page of a list, and how many items match in all."""

    items: list
    total: int
    limit: int
    offset: int
