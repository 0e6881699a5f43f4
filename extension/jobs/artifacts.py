"""Model and dataset tasks: plain data in, plain data out, artifacts written to the store.

They run on Dask workers in production, so they never touch the database: the service records
what they return. Every artifact is written into a staging folder the caller owns and renamed into
place by the caller, except content-addressed bodies and features, which are committed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headstart.extension.store import ArtifactStore, body_key
from headstart.kernels.engine.limits import IngestLimits, ModelLimits
from headstart.kernels.errors import Invalid

MODEL_FILE = "model.keras"
HEAD_FILE = "head.keras"
BODY_REF_FILE = "body.ref"


@dataclass(frozen=True)
class VersionRef:
    """Where one model version lives in the store, and what the catalog knows of it."""

    model_id: int
    version: int
    folder: str
    kind: str
    labels: list[str] | None
    body_sha: str | None
    body_ref: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """What a staged model folder holds: recorded as a model version once committed."""

    kind: str
    labels: list[str] | None
    params: int
    size_bytes: int
    body_sha: str | None
    body_ref: str | None = None

    @property
    def artifact_file(self) -> str:
        return HEAD_FILE if self.body_ref else MODEL_FILE


@dataclass(frozen=True)
class TrainingFacts:
    """The outcome of a training: its epochs, how the head was handled, and the candidate."""

    epochs: list[dict]
    head: str
    feature_cache: str | None
    candidate: ModelFacts
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)


def _load(path: Path) -> object:
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def load_version(store: ArtifactStore, ref: VersionRef) -> object:
    """The full Sequential of a version, assembling a shared body and a stored head if need be."""
    from headstart.kernels.engine.surgery import attach_head

    folder = store.path(ref.folder)
    if ref.body_ref is None:
        return _load(folder / MODEL_FILE)
    body = _load(store.path(body_key(ref.body_ref)))
    head_model = _load(folder / HEAD_FILE)
    return attach_head(body, len(ref.labels or []), head=head_model.layers[-1])  # type: ignore[attr-defined]


def stage_model(model: object, labels: list[str] | None, folder: Path, limits: ModelLimits) -> ModelFacts:
    """Save a full model into a staging folder, checking the operator's size limits."""
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.limits import check_model_limits
    from headstart.kernels.engine.surgery import body_fingerprint, count_params, model_kind, split_model

    kind = model_kind(model)
    params = count_params(model)
    check_model_limits(params, 0, limits)
    size = save_model(model, folder / MODEL_FILE, kind=kind, labels=labels)
    check_model_limits(params, size, limits)
    body, _ = split_model(model)
    return ModelFacts(kind, labels, params, size, body_fingerprint(body))


def create_model(
    architecture: str,
    labels: list[str] | None,
    weights: str | None,
    options: dict,
    folder: Path,
    limits: ModelLimits,
    seed: int | None = None,
) -> ModelFacts:
    """Build a zoo architecture, its starting weights seeded with `seed`, and stage it as a model file."""
    from headstart.kernels.engine.architectures import build_model

    model = build_model(architecture, labels=labels, weights=weights, seed=seed, **options)
    return stage_model(model, list(labels) if labels else None, folder, limits)


def upload_model(path: Path, labels: list[str] | None, folder: Path, limits: ModelLimits) -> ModelFacts:
    """Validate an uploaded `.keras` file (rules 1, 6, 8) and stage it as a normal model file."""
    from headstart.kernels.engine.keras_file import read_metadata
    from headstart.kernels.engine.surgery import model_kind
    from headstart.kernels.engine.validation import load_keras_file

    model = load_keras_file(path, limits)
    kind = model_kind(model)
    if labels is None:
        labels = (read_metadata(path) or {}).get("labels")
    outputs = int(model.output_shape[-1])
    if kind == "classifier":
        if not labels:
            raise Invalid(f"the model is a classifier with {outputs} outputs; give its labels")
        if len(labels) != outputs:
            raise Invalid(f"the model has {outputs} outputs but {len(labels)} labels were given")
        if len(set(labels)) != len(labels):
            raise Invalid("labels must be distinct")
    elif labels:
        raise Invalid("labels were given, but the model is a feature vector (no softmax head)")
    return stage_model(model, list(labels) if labels else None, folder, limits)


def ingest_dataset(
    source: Path,
    folder: Path,
    limits: IngestLimits,
    *,
    skip_invalid: bool,
    resize_policy: str,
    progress: Callable[[int, int], None] | None = None,
) -> object:
    """Decode an upload into uint8 shards in a staging folder."""
    from headstart.kernels.engine.ingest import ingest

    return ingest(
        source,
        folder,
        limits=limits,
        skip_invalid=skip_invalid,
        resize_policy=resize_policy,
        progress=progress,
    )
