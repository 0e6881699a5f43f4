"""What the tasks share about stored models: where a version lives, what a staged model holds.

A version is a full `model.keras`, or a head file plus a reference to a shared body under `bodies/`
(a frozen-body training's result, or a pretrained create); a pretrained feature vector is its body's
reference alone.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.schemas import Kind
from headstart.kernels.store import ArtifactStore, body_facts_key, body_key, file_sha256

MODEL_FILE = "model.keras"
HEAD_FILE = "head.keras"
BODY_REF_FILE = "body.ref"


class VersionRef(BaseModel):
    """Where one model version lives in the store, and what the catalog knows of it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_id: int
    version: int
    folder: str
    kind: Kind
    labels: list[str] | None
    body_sha: str | None
    body_ref: str | None = None
    content_sha: str | None = None  # the sha256 of the version's own file (unknown before 0009)

    @property
    def content(self) -> str | None:
        """What names this version's content, whatever its id: its file's sha256, and its shared
        body's when it has one; None when unknown."""
        if self.content_sha is None:
            return None
        return self.content_sha if self.body_ref is None else f"{self.content_sha}+{self.body_ref}"


class ModelFacts(BaseModel):
    """What a staged model folder holds: recorded as a model version once committed."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    labels: list[str] | None
    params: int
    size_bytes: int
    body_sha: str | None
    body_ref: str | None = None
    weights_source: str | None = None  # where pretrained starting weights came from (models show)
    # The sha256 of the version's own file (`artifact_file`), hashed on the worker that wrote it.
    content_sha: str | None = None

    @property
    def artifact_file(self) -> str:
        """The version's own file: the full model, or its head (a feature vector: the body's reference)."""
        if self.body_ref is None:
            return MODEL_FILE
        return HEAD_FILE if self.kind == "classifier" else BODY_REF_FILE

    def hashed(self, folder: Path) -> ModelFacts:
        """These facts with the sha256 of the version's own file, staged in `folder`."""
        return self.model_copy(update={"content_sha": file_sha256(folder / self.artifact_file)})


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


class KeptModels:
    """Loaded versions kept in this process by their content, the least recently used let go first.

    A Dask worker is a process of its own: the version one prediction loaded, the next prediction of
    it on that worker runs without loading again (loading EfficientNet-Lite0 takes about 1.5 s on two
    cores, a call on one image about 0.1 s). The runner sends predictions of a version to the worker
    that ran its last one (`JobRunner.submit`'s `affinity`). A version whose content is unknown is
    loaded every time.
    """

    def __init__(self) -> None:
        self._models: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: ArtifactStore, ref: VersionRef, keep: int) -> object:
        """The version's model, loaded unless kept; at most `keep` stay (0 keeps none)."""
        key = ref.content
        if key is None or keep < 1:
            return load_version(store, ref)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        model = load_version(store, ref)  # outside the lock: a load of another version need not wait
        with self._lock:
            self._models[key] = model
            while len(self._models) > keep:
                self._models.popitem(last=False)
        return model

    def contents(self) -> list[str]:
        """The kept versions' contents, least recently used first."""
        with self._lock:
            return list(self._models)


KEPT_MODELS = KeptModels()


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
    facts = ModelFacts(
        kind=kind, labels=labels, params=params, size_bytes=size, body_sha=body_fingerprint(body)
    )
    return facts.hashed(folder)


def head_model(head: object, feature_dim: int) -> object:
    """A head file's model: the head alone on feature vectors, as a frozen-body training stores it."""
    import keras

    return keras.Sequential([keras.Input((int(feature_dim),)), head], name="head_on_features")


def body_facts(store: ArtifactStore, body_sha: str, limits: ModelLimits) -> tuple[int, int]:
    """A shared body's parameter count and file size in bytes.

    Counting the parameters reads the body file's weight groups (tenths of a second for a
    MobileNetV2), so the first count is kept beside the body and later trainings read that.
    """
    key = body_facts_key(body_sha)
    try:
        facts = json.loads(store.path(key).read_text())
        return int(facts["params"]), int(facts["size_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from headstart.kernels.engine.validation import inspect_keras_file

    inspected = inspect_keras_file(store.path(body_key(body_sha)), limits)
    with store.staging() as folder:
        staged = folder / "facts.json"
        staged.write_text(json.dumps({"params": inspected.params, "size_bytes": inspected.size_bytes}))
        store.commit_if_absent(staged, key)
    return inspected.params, inspected.size_bytes
