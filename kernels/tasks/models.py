"""The model tasks: build a zoo architecture (random or pretrained), and validate an uploaded file.

Each stages its model folder under the store key its input names; the service commits it as a
version when it records the result. A pretrained body, and the source entry that maps a weights
file to it, are content-addressed, so they are committed here (a concurrent create of the same
body may win; both are the same).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.engine.pretrained import WeightsSource
from headstart.kernels.errors import Invalid
from headstart.kernels.store import ArtifactStore, body_key
from headstart.kernels.tasks.artifacts import BODY_REF_FILE, HEAD_FILE, ModelFacts, head_model, stage_model
from headstart.kernels.tasks.reporting import Reporter

# A pretrained body converted from a weights file, by the file's content: see `pretrained_body`.
SOURCES_FOLDER = "bodies/sources"
SOURCE_FACTS = "source.json"
IMAGENET_HEAD_FILE = "imagenet_head.keras"
# Part of every source key: bump it when building from a weights file changes, so that bodies built
# the old way are not reused.
CONVERSION = 1


class CreateInput(BaseModel):
    """A create job: which architecture, its starting weights and labels, and where to stage it."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    staging: str  # the store key of the folder the model is staged in
    architecture: str
    labels: list[str] | None = None
    weights: str | None = None
    options: dict[str, int | float] = Field(default_factory=dict)
    seed: int | None = None
    imagenet_head: bool = False
    weights_folder: str | None = None
    limits: ModelLimits = ModelLimits()


def create_model(given: CreateInput, reporter: Reporter) -> ModelFacts:
    """Build a zoo architecture, its starting weights seeded with `seed`, and stage it.

    Random weights make a full model file. Pretrained ones make a shared body under `bodies/`
    (stored once, however many models start from it) and, for a classifier, a head file: a fresh
    head for `labels`, or with `imagenet_head` the pretrained ImageNet classifier.
    """
    from headstart.kernels.engine.architectures import build_model
    from headstart.kernels.engine.zoo import check_request

    check_request(
        given.architecture,
        labels=given.labels,
        weights=given.weights,
        seed=given.seed,
        imagenet_head=given.imagenet_head,
        options=given.options,
    )
    store = ArtifactStore(given.store_url)
    with store.writing(given.staging, retry=reporter.retry) as folder:
        reporter.check()
        if given.weights is None:
            options: dict[str, Any] = dict(given.options)
            model = build_model(
                given.architecture, labels=given.labels, weights=None, seed=given.seed, **options
            )
            return stage_model(model, list(given.labels) if given.labels else None, folder, given.limits)
        return _create_pretrained(store, given, folder)


@dataclass(frozen=True)
class PretrainedBody:
    """A pretrained body, and what a create needs to know of it without loading it."""

    body_sha: str
    feature_dim: int
    params: int
    size_bytes: int
    imagenet_head: Path | None  # the pretrained 1000-class head's file, where the weights have one


def _create_pretrained(store: ArtifactStore, given: CreateInput, folder: Path) -> ModelFacts:
    from headstart.kernels.engine.architectures import ARCHITECTURES
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.limits import check_model_limits
    from headstart.kernels.engine.pretrained import imagenet_labels
    from headstart.kernels.engine.surgery import count_params

    architecture, options, labels, limits = given.architecture, given.options, given.labels, given.limits
    source = ARCHITECTURES[architecture].weights_source(given.weights_folder, **options)
    with store.staging() as staging:
        body = pretrained_body(store, architecture, options, source, staging)
        head_params = head_size = 0
        if given.imagenet_head:
            if body.imagenet_head is None:
                raise Invalid(f"the ImageNet weights of {architecture} hold no ImageNet head")
            labels = list(imagenet_labels())
            shutil.copyfile(body.imagenet_head, folder / HEAD_FILE)
            head_size = (folder / HEAD_FILE).stat().st_size
            head_params = (body.feature_dim + 1) * len(labels)
        elif labels:
            head = _fresh_head(body.feature_dim, len(labels), given.seed)
            head_size = save_model(head, folder / HEAD_FILE, kind="classifier", labels=labels)
            head_params = count_params(head)
        params, size = body.params + head_params, body.size_bytes + head_size
        # Checked before the body is stored: a refused create leaves nothing behind.
        check_model_limits(params, size, limits)
        _commit_built(store, staging, body.body_sha)
    (folder / BODY_REF_FILE).write_text(body.body_sha + "\n")
    return ModelFacts(
        kind="classifier" if labels else "feature_vector",
        labels=list(labels) if labels else None,
        params=params,
        size_bytes=size,
        body_sha=body.body_sha,
        body_ref=body.body_sha,
        weights_source=source.description,
    ).hashed(folder)


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
            head_model(head, feature_dim), head_file, kind="classifier", labels=list(imagenet_labels())
        )
    params = count_params(body)
    facts = {"body_sha": body_sha, "feature_dim": feature_dim, "params": params, "source": source.description}
    (entry / SOURCE_FACTS).write_text(json.dumps(facts, indent=1) + "\n")
    if key is not None:
        (staging / "source.key").write_text(key)
    return PretrainedBody(body_sha, feature_dim, params, size, head_file)


def _fresh_head(feature_dim: int, n_labels: int, seed: int | None) -> object:
    """A new softmax head for a pretrained body; the seed makes its starting weights repeat."""
    import keras

    from headstart.kernels.engine.surgery import HEAD_NAME

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return head_model(keras.layers.Dense(n_labels, activation="softmax", name=HEAD_NAME), feature_dim)


def _source_key(architecture: str, options: dict, path: Path) -> str:
    from headstart.kernels.store import file_sha256

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


class ValidateInput(BaseModel):
    """An upload's validation: the uploaded file in the store, the labels given, where to stage it."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    source: str  # the store key of the uploaded .keras file
    staging: str
    labels: list[str] | None = None
    limits: ModelLimits = ModelLimits()


def validate_upload(given: ValidateInput, reporter: Reporter) -> ModelFacts:
    """Validate an uploaded `.keras` file (rules 1, 6, 8) and stage it as a normal model file."""
    from headstart.kernels.engine.keras_file import read_metadata
    from headstart.kernels.engine.surgery import model_kind
    from headstart.kernels.engine.validation import load_keras_file

    store = ArtifactStore(given.store_url)
    path = store.path(given.source)
    model = load_keras_file(path, given.limits)
    kind = model_kind(model)
    labels = given.labels
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
    with store.writing(given.staging, retry=reporter.retry) as folder:
        reporter.check()
        return stage_model(model, list(labels) if labels else None, folder, given.limits)
