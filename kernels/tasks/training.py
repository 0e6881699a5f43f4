"""The training task: one transfer-learning run of a model version on a dataset (rules 2 and 3).

A frozen body trains only its head, on features from the cache (computed once per body and
dataset), and the candidate is stored as a head plus a reference to the shared body. Unfrozen
layers train the whole model on the image shards, and the candidate is a full model file. Either
way the candidate is staged once, straight under the key it keeps while it awaits the owner's
decision (`models/<id>/candidates/t<training>`), and described once, by the result.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.schemas import EpochPublic, FeatureCacheState, HeadHandling, TrainingConfig
from headstart.kernels.store import ArtifactStore, body_key, dataset_key
from headstart.kernels.tasks.artifacts import (
    BODY_REF_FILE,
    HEAD_FILE,
    ModelFacts,
    VersionRef,
    body_facts,
    load_version,
    stage_model,
)
from headstart.kernels.tasks.reporting import Reporter

if TYPE_CHECKING:
    from headstart.kernels.engine.head_fit import EpochsSink, HeadFit

EpochSink = Callable[[EpochPublic], None]
Progress = Callable[[int, int], None]


class TrainInput(BaseModel):
    """A training job: the version it starts from, the dataset, how to train, and the candidate's key."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    ref: VersionRef
    dataset_id: int
    config: TrainingConfig
    candidate: str  # the store key the candidate is staged under
    limits: ModelLimits = ModelLimits()


class TrainResult(BaseModel):
    """A finished run: its epochs, how the head was handled, the feature cache's part, the candidate."""

    model_config = ConfigDict(frozen=True)

    epochs: list[EpochPublic]
    head: HeadHandling
    feature_cache: FeatureCacheState | None
    candidate: ModelFacts
    stopped_early: bool = False
    val_accuracy: float | None = None  # the candidate's: its kept epoch's val accuracy


def _ensure_body_stored(store: ArtifactStore, body: object, body_sha: str) -> None:
    """Store a body once under its fingerprint, so every frozen-body candidate can share it."""
    from headstart.kernels.engine.keras_file import save_model

    if store.exists(body_key(body_sha)):
        return
    with store.staging() as folder:
        save_model(body, folder / "body.keras", kind="feature_vector", labels=None)
        store.commit_if_absent(folder / "body.keras", body_key(body_sha))


def cached_features(
    store: ArtifactStore,
    ref: VersionRef,
    body_sha: str,
    dataset_id: int,
    splits: dict,
    batch_size: int,
    loaded: dict,
    progress: Progress | None = None,
) -> tuple[dict, FeatureCacheState]:
    """Cached features for each split, computing (and caching) the missing ones with the body.

    `progress(done, total)` counts the images the body has run over, when it has to run.
    """
    from headstart.kernels.engine.features import FeatureCache
    from headstart.kernels.engine.surgery import split_model

    cache = FeatureCache(store.root / "features", store.tmp)
    for name in splits:
        # From an object store, features that another worker computed come into the local cache
        # first (unless it has them already); what this one computes goes back to the store.
        store.path(store.key_of(cache.path(body_sha, dataset_id, name)))
    found = {name: cache.load(body_sha, dataset_id, name) for name in splits}
    missing = [name for name, array in found.items() if array is None]
    if missing or not store.exists(body_key(body_sha)):
        if "model" not in loaded:
            loaded["model"] = load_version(store, ref)
        body, _ = split_model(loaded["model"])
        _ensure_body_stored(store, body, body_sha)
        total, done = sum(len(splits[name]) for name in missing), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        for name in missing:
            found[name] = cache.compute(
                body, splits[name], body_sha, dataset_id, name, batch_size=batch_size, progress=advance
            )
            store.share(cache.path(body_sha, dataset_id, name))
    return found, "miss" if missing else "hit"


def current_head(store: ArtifactStore, ref: VersionRef, loaded: dict) -> object:
    """The version's current head layer, reading only the small head file when it has one."""
    import keras

    if ref.body_ref is not None:
        stored = keras.saving.load_model(store.path(ref.folder) / HEAD_FILE, compile=False)
        return stored.layers[-1]
    if "model" not in loaded:
        loaded["model"] = load_version(store, ref)
    return loaded["model"].layers[-1]


def _stage_heads(
    store: ArtifactStore,
    fits: list[HeadFit],
    labels: list[str],
    body_sha: str,
    folders: list[Path],
    limits: ModelLimits,
) -> list[ModelFacts]:
    """Stage each fitted head as a candidate in its folder: the head file and the body's reference.

    One Keras head is built and saved, with the first fit's weights; every other head file is that
    file with its own weights in their place (`HeadFileTemplate`), so a sweep pays for one build and
    one save.
    """
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.limits import check_model_limits
    from headstart.kernels.engine.surgery import head_from_features

    dim, n_labels = fits[0].head.kernel.shape
    body_params, body_bytes = body_facts(store, body_sha, limits)
    params = body_params + dim * n_labels + n_labels
    head = None
    template: HeadFileTemplate | None = None
    staged = []
    for fit, folder in zip(fits, folders, strict=True):
        kernel, bias = fit.head.kernel.astype(np.float32), fit.head.bias.astype(np.float32)
        path = folder / HEAD_FILE
        if template is not None:
            template.write(path, kernel, bias)
        else:
            first = head is None
            if head is None:
                head = head_from_features(dim, n_labels)
            head.layers[-1].set_weights([kernel, bias])
            save_model(head, path, kind="classifier", labels=labels)
            if first and len(fits) > 1:  # one head has no use for a template
                template = HeadFileTemplate.of(path, kernel, bias)
        size = path.stat().st_size + body_bytes
        (folder / BODY_REF_FILE).write_text(body_sha + "\n")
        check_model_limits(params, size, limits)
        facts = ModelFacts(
            kind="classifier",
            labels=labels,
            params=params,
            size_bytes=size,
            body_sha=body_sha,
            body_ref=body_sha,
        )
        staged.append(facts.hashed(folder))
    return staged


class HeadFileTemplate:
    """A saved head file, to write more of them with other weights of the same shapes, without Keras.

    A `.keras` file is a zip archive of the model's config, metadata and an HDF5 file of its weights;
    Keras stores a Dense layer's kernel and bias as contiguous, unfiltered float32 datasets, whose
    bytes sit at fixed offsets in the HDF5 file (HDF5 checksums its metadata, never raw data). So
    another head's file is the same archive with those bytes replaced: the file Keras would write
    for it, the date it was saved aside. `of` answers None for a file laid out otherwise.
    """

    def __init__(
        self, members: list[tuple[zipfile.ZipInfo, bytes]], weights: str, spans: list[slice]
    ) -> None:
        self.members = members
        self.weights = weights  # the archive member holding the HDF5 weights
        self.spans = spans  # where the kernel's bytes and the bias' lie in it

    @classmethod
    def of(cls, path: Path, kernel: np.ndarray, bias: np.ndarray) -> HeadFileTemplate | None:
        """The template of the head file at `path`, whose weights are `kernel` and `bias`."""
        import h5py

        with zipfile.ZipFile(path) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist()]
        found = [(info.filename, data) for info, data in members if info.filename.endswith(".h5")]
        if len(found) != 1:
            return None
        name, data = found[0]
        datasets: list[Any] = []
        with h5py.File(io.BytesIO(data), "r") as weights:
            weights.visititems(
                lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None
            )
            spans = []
            for array in (kernel, bias):
                matching = [d for d in datasets if d.shape == array.shape]
                if len(matching) != 1 or not _raw_float32(matching[0]):
                    return None
                offset = matching[0].id.get_offset()
                span = slice(offset, offset + array.nbytes)
                if data[span] != array.astype("<f4").tobytes():
                    return None
                spans.append(span)
        if len(datasets) != 2:
            return None
        return cls(members, name, spans)

    def write(self, path: Path, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Write the head file of `kernel` and `bias` at `path`, atomically."""
        weights = bytearray(next(data for info, data in self.members if info.filename == self.weights))
        for span, array in zip(self.spans, (kernel, bias), strict=True):
            weights[span] = array.astype("<f4").tobytes()
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.keras")
        try:
            with zipfile.ZipFile(tmp, "w") as archive:
                for info, data in self.members:
                    archive.writestr(info, bytes(weights) if info.filename == self.weights else data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _raw_float32(dataset: Any) -> bool:
    """Whether an HDF5 dataset is little-endian float32 stored contiguously, without filters."""
    return (
        dataset.dtype == np.dtype("<f4")
        and dataset.chunks is None
        and dataset.compression is None
        and dataset.id.get_offset() is not None
    )


def _head_result(
    fit: HeadFit, handled: HeadHandling, cache_state: FeatureCacheState, candidate: ModelFacts
) -> TrainResult:
    return TrainResult(
        epochs=fit.epochs,
        head=handled,
        feature_cache=cache_state,
        candidate=candidate,
        stopped_early=len(fit.epochs) < fit.config.epochs,
        val_accuracy=fit.val_accuracy,
    )


def fit_on_features(
    store: ArtifactStore,
    ref: VersionRef,
    dataset_id: int,
    configs: list[TrainingConfig],
    *,
    on_epochs: EpochsSink | None = None,
    on_features: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[HeadFit], list[str], str, HeadHandling, FeatureCacheState]:
    """Fit one head per config on the version's cached features of a dataset's train split.

    Returns the fits, the dataset's labels, the body's sha, how the head was handled and the cache's
    part. The heads start from the version's head when its labels are the dataset's (rule 2).
    """
    from headstart.kernels.engine.head_fit import Head, fit_heads
    from headstart.kernels.engine.head_plan import plan_head
    from headstart.kernels.engine.shards import DatasetReader
    from headstart.kernels.engine.training import reorder_head

    assert ref.body_sha is not None
    dataset = DatasetReader(store.path(dataset_key(dataset_id)))
    labels = list(dataset.labels)
    plan = plan_head(ref.kind, ref.labels, labels)
    splits = {"train": dataset.split("train"), "val": dataset.split("val")}
    loaded: dict = {}
    body_sha = ref.body_ref or ref.body_sha
    features, cache_state = cached_features(
        store, ref, body_sha, dataset_id, splits, configs[0].batch_size, loaded, on_features
    )
    start = None
    if plan.keep:
        head = current_head(store, ref, loaded)
        if plan.order is not None:
            reorder_head(head, plan.order)
        start = Head(*head.get_weights())  # type: ignore[attr-defined]
    fits = fit_heads(
        (features["train"], splits["train"].labels),
        (features["val"], splits["val"].labels),
        configs,
        len(labels),
        start=start,
        on_epochs=on_epochs,
        should_stop=should_stop,
    )
    return fits, labels, body_sha, "kept" if plan.keep else "replaced", cache_state


def train_version(
    store: ArtifactStore,
    ref: VersionRef,
    dataset_id: int,
    config: TrainingConfig,
    folder: Path,
    limits: ModelLimits,
    *,
    on_epoch: EpochSink | None = None,
    on_features: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a copy of `ref` on a dataset; the candidate is staged in `folder`.

    `should_stop()` is asked after every training batch: once true, the run raises Cancelled.
    """
    if config.frozen_body and ref.body_sha is not None:
        (fit,), labels, body_sha, handled, cache_state = fit_on_features(
            store,
            ref,
            dataset_id,
            [config],
            on_epochs=None if on_epoch is None else (lambda reports: on_epoch(reports[0][1])),
            on_features=on_features,
            should_stop=should_stop,
        )
        return _head_result(
            fit, handled, cache_state, _stage_heads(store, [fit], labels, body_sha, [folder], limits)[0]
        )
    from headstart.kernels.engine.head_plan import plan_head
    from headstart.kernels.engine.shards import DatasetReader
    from headstart.kernels.engine.surgery import attach_head, set_trainable, split_model
    from headstart.kernels.engine.training import fit_model, reorder_head

    dataset = DatasetReader(store.path(dataset_key(dataset_id)))
    labels = list(dataset.labels)
    plan = plan_head(ref.kind, ref.labels, labels)
    body, head = split_model(load_version(store, ref))
    if plan.keep and head is not None and plan.order is not None:
        reorder_head(head, plan.order)
    trainable = attach_head(body, len(labels), head=head if plan.keep else None)
    set_trainable(body, config.fine_tune_layers)
    epochs = fit_model(
        trainable,
        dataset.split("train"),
        dataset.split("val"),
        config,
        on_epoch=on_epoch,
        should_stop=should_stop,
    )
    trainable.trainable = True  # the downloaded file should not carry this run's freezing
    return TrainResult(
        epochs=epochs,
        head="kept" if plan.keep else "replaced",
        feature_cache=None,
        candidate=stage_model(trainable, labels, folder, limits),
        stopped_early=len(epochs) < config.epochs,
        val_accuracy=epochs[-1].val_accuracy if epochs else None,
    )


# --- the training job --------------------------------------------------------------------------


def train(given: TrainInput, reporter: Reporter) -> TrainResult:
    """The training as a job: it runs on a Dask worker (or in the command line's process).

    The candidate is staged under `given.candidate`, which the service records as the training's
    candidate when the result comes back. A retry starts by removing what the killed attempt left
    there; a failed or cancelled attempt removes what it staged.
    """
    store = ArtifactStore(given.store_url)
    with store.writing(given.candidate, retry=reporter.retry) as folder:
        return train_version(
            store,
            given.ref,
            given.dataset_id,
            given.config,
            folder,
            given.limits,
            on_epoch=lambda epoch: reporter.epoch(epoch.model_dump()),
            on_features=reporter.progress("features"),
            should_stop=reporter.should_stop,
        )


# --- the sweep job -----------------------------------------------------------------------------


class SweepInput(BaseModel):
    """A sweep job: one version, one dataset, one config per head and the key each candidate gets."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    ref: VersionRef
    dataset_id: int
    configs: list[TrainingConfig]
    candidates: list[str]  # store keys, one per config
    limits: ModelLimits = ModelLimits()


class SweepResult(BaseModel):
    """A finished sweep: one run per config, in the configs' order."""

    model_config = ConfigDict(frozen=True)

    runs: list[TrainResult]


def sweep(given: SweepInput, reporter: Reporter) -> SweepResult:
    """The sweep as a job: every head trains on the same cached features, side by side (head_fit.py).

    Each epoch of a stack of heads is one report for all its runs (`run`: the config's index), so
    eight heads cost the service as many reports as one; the job's progress counts the epochs of
    all runs (phase "epochs"; early stopping ends some runs
    before their last). Every candidate is staged under its own key; a failed or cancelled sweep
    removes them all.
    """
    store = ArtifactStore(given.store_url)
    epochs_done, epochs_total = 0, sum(config.epochs for config in given.configs)
    epochs_progress = reporter.progress("epochs")

    def on_epochs(reports: list[tuple[int, EpochPublic]]) -> None:
        nonlocal epochs_done
        reporter.epochs([(run, epoch.model_dump()) for run, epoch in reports])
        epochs_done += len(reports)
        epochs_progress(epochs_done, epochs_total)

    with contextlib.ExitStack() as outputs:
        folders = [
            outputs.enter_context(store.writing(key, retry=reporter.retry)) for key in given.candidates
        ]
        fits, labels, body_sha, handled, cache_state = fit_on_features(
            store,
            given.ref,
            given.dataset_id,
            given.configs,
            on_epochs=on_epochs,
            on_features=reporter.progress("features"),
            should_stop=reporter.should_stop,
        )
        epochs_progress(epochs_total, epochs_total)
        staged = _stage_heads(store, fits, labels, body_sha, folders, given.limits)
        return SweepResult(
            runs=[
                _head_result(fit, handled, cache_state, facts)
                for fit, facts in zip(fits, staged, strict=True)
            ]
        )
