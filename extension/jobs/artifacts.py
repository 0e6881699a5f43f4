"""Model and dataset tasks: plain data in, plain data out, artifacts written to the store.

They run on Dask workers in production, so they never touch the database: the service records
what they return. Every artifact is written into a staging folder the caller owns and renamed into
place by the caller, except content-addressed bodies and features, which are committed here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headstart.extension.store import ArtifactStore, body_key
from headstart.kernels.engine.limits import IngestLimits, ModelLimits
from headstart.kernels.engine.pretrained import WeightsSource
from headstart.kernels.errors import Invalid

MODEL_FILE = "model.keras"
HEAD_FILE = "head.keras"
BODY_REF_FILE = "body.ref"
# A pretrained body converted from a weights file, by the file's content: see `pretrained_body`.
SOURCES_FOLDER = "bodies/sources"
SOURCE_FACTS = "source.json"
IMAGENET_HEAD_FILE = "imagenet_head.keras"
# Part of every source key: bump it when building from a weights file changes, so that bodies built
# the old way are not reused.
CONVERSION = 1


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
    weights_source: str | None = None  # where pretrained starting weights came from (models show)

    @property
    def artifact_file(self) -> str:
        """The version's own file: the full model, or its head (a feature vector: the body's reference)."""
        if self.body_ref is None:
            return MODEL_FILE
        return HEAD_FILE if self.kind == "classifier" else BODY_REF_FILE


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
    if ref.kind == "feature_vector":
        return body  # a pretrained feature vector is its shared body, nothing more
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
    *,
    store_root: str | None = None,
    weights_folder: str | None = None,
    imagenet_head: bool = False,
) -> ModelFacts:
    """Build a zoo architecture, its starting weights seeded with `seed`, and stage it in `folder`.

    Random weights make a full model file. Pretrained ones make a shared body under `bodies/`
    (stored once, however many models start from it) and, for a classifier, a head file: a fresh
    head for `labels`, or with `imagenet_head` the pretrained ImageNet classifier.
    """
    from headstart.kernels.engine.architectures import build_model, check_request

    check_request(
        architecture, labels=labels, weights=weights, seed=seed, imagenet_head=imagenet_head, options=options
    )
    if weights is None:
        model = build_model(architecture, labels=labels, weights=None, seed=seed, **options)
        return stage_model(model, list(labels) if labels else None, folder, limits)
    if store_root is None:
        raise Invalid("a pretrained create needs the artifact store for its shared body")
    return _create_pretrained(
        ArtifactStore(store_root),
        architecture,
        labels,
        options,
        folder,
        limits,
        seed,
        weights_folder,
        imagenet_head,
    )


@dataclass(frozen=True)
class PretrainedBody:
    """A pretrained body, and what a create needs to know of it without loading it."""

    body_sha: str
    feature_dim: int
    params: int
    size_bytes: int
    imagenet_head: Path | None  # the pretrained 1000-class head's file, where the weights have one


def _create_pretrained(
    store: ArtifactStore,
    architecture: str,
    labels: list[str] | None,
    options: dict,
    folder: Path,
    limits: ModelLimits,
    seed: int | None,
    weights_folder: str | None,
    imagenet_head: bool,
) -> ModelFacts:
    from headstart.kernels.engine.architectures import ARCHITECTURES
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.limits import check_model_limits
    from headstart.kernels.engine.pretrained import imagenet_labels
    from headstart.kernels.engine.surgery import count_params

    source = ARCHITECTURES[architecture].weights_source(weights_folder, **options)
    with store.staging() as staging:
        body = pretrained_body(store, architecture, options, source, staging)
        head_params = head_size = 0
        if imagenet_head:
            if body.imagenet_head is None:
                raise Invalid(f"the ImageNet weights of {architecture} hold no ImageNet head")
            labels = list(imagenet_labels())
            shutil.copyfile(body.imagenet_head, folder / HEAD_FILE)
            head_size = (folder / HEAD_FILE).stat().st_size
            head_params = (body.feature_dim + 1) * len(labels)
        elif labels:
            head = _fresh_head(body.feature_dim, len(labels), seed)
            head_size = save_model(head, folder / HEAD_FILE, kind="classifier", labels=labels)
            head_params = count_params(head)
        params, size = body.params + head_params, body.size_bytes + head_size
        # Checked before the body is stored: a refused create leaves nothing behind.
        check_model_limits(params, size, limits)
        _commit_built(store, staging, body.body_sha)
    (folder / BODY_REF_FILE).write_text(body.body_sha + "\n")
    return ModelFacts(
        "classifier" if labels else "feature_vector",
        list(labels) if labels else None,
        params,
        size,
        body.body_sha,
        body_ref=body.body_sha,
        weights_source=source.description,
    )


def pretrained_body(
    store: ArtifactStore, architecture: str, options: dict, source: WeightsSource, staging: Path
) -> PretrainedBody:
    """The body that a weights source gives, built (its weights read or converted) the first time only.

    A source file maps to its body by the file's sha256, with the architecture, its options and
    CONVERSION, under `bodies/sources/<key>/`; a later create finds it there and builds nothing.
    A body built here waits in `staging` for `_commit_built`, after the caller's checks. Keras'
    own download has no file to key by beforehand, so that body is built every time, though stored
    once (by its fingerprint) all the same.
    """
    from headstart.kernels.engine.architectures import ARCHITECTURES, build_model
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.pretrained import imagenet_labels
    from headstart.kernels.engine.surgery import body_fingerprint, count_params, split_model

    key = None if source.path is None else _source_key(architecture, options, source.path)
    if key is not None:
        found = _read_source(store, key)
        if found is not None:
            return found
    with_head = ARCHITECTURES[architecture].imagenet_head
    model = build_model(architecture, labels=None, weights=source, imagenet_head=with_head, **options)
    body, head = split_model(model)
    body_sha = body_fingerprint(body)
    feature_dim = int(body.outputs[0].shape[-1])
    size = save_model(body, staging / "body.keras", kind="feature_vector", labels=None)
    entry = staging / "source"
    entry.mkdir()
    head_file = None
    if head is not None:
        head_file = entry / IMAGENET_HEAD_FILE
        save_model(
            _head_model(head, feature_dim), head_file, kind="classifier", labels=list(imagenet_labels())
        )
    params = count_params(body)
    facts = {"body_sha": body_sha, "feature_dim": feature_dim, "params": params, "source": source.description}
    (entry / SOURCE_FACTS).write_text(json.dumps(facts, indent=1) + "\n")
    if key is not None:
        (staging / "source.key").write_text(key)
    return PretrainedBody(body_sha, feature_dim, params, size, head_file)


def _head_model(head: object, feature_dim: int) -> object:
    """A head file's model: the head alone on feature vectors, as a frozen-body training stores it."""
    import keras

    return keras.Sequential([keras.Input((feature_dim,)), head], name="head_on_features")


def _fresh_head(feature_dim: int, n_labels: int, seed: int | None) -> object:
    """A new softmax head for a pretrained body; the seed makes its starting weights repeat."""
    import keras

    from headstart.kernels.engine.surgery import HEAD_NAME

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return _head_model(keras.layers.Dense(n_labels, activation="softmax", name=HEAD_NAME), feature_dim)


def _source_key(architecture: str, options: dict, path: Path) -> str:
    from headstart.kernels.engine.pretrained import file_sha256

    recipe = json.dumps([architecture, sorted(options.items()), CONVERSION, file_sha256(path)])
    return hashlib.sha256(recipe.encode()).hexdigest()


def _read_source(store: ArtifactStore, key: str) -> PretrainedBody | None:
    """A body converted before from the same source file, if the store still holds it."""
    entry = store.path(f"{SOURCES_FOLDER}/{key}")
    try:
        facts = json.loads((entry / SOURCE_FACTS).read_text())
        body_sha, feature_dim, params = facts["body_sha"], int(facts["feature_dim"]), int(facts["params"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not store.exists(body_key(body_sha)):
        return None
    head = entry / IMAGENET_HEAD_FILE
    size = store.size(body_key(body_sha))
    return PretrainedBody(body_sha, feature_dim, params, size, head if head.is_file() else None)


def _commit_built(store: ArtifactStore, staging: Path, body_sha: str) -> None:
    """Put a body built in `staging` (and its source entry) in place; a concurrent create may win."""
    if (staging / "body.keras").is_file():
        store.commit_if_absent(staging / "body.keras", body_key(body_sha))
    key_file = staging / "source.key"
    if key_file.is_file():
        store.commit_if_absent(staging / "source", f"{SOURCES_FOLDER}/{key_file.read_text()}")


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
