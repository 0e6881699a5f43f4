"""The training task: one transfer-learning run of a model version on a dataset (rules 2 and 3).

A frozen body trains only its head, on features from the cache (computed once per body and
dataset), and the candidate is stored as a head plus a reference to the shared body. Unfrozen
layers train the whole model on the image shards, and the candidate is a full model file. Either
way the candidate is staged once, straight under the key it keeps while it awaits the owner's
decision (`models/<id>/candidates/t<training>`), and described once, by the result.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.schemas import EpochPublic, FeatureCacheState, HeadHandling, TrainingConfig
from headstart.kernels.store import ArtifactStore, body_key, dataset_key
from headstart.kernels.tasks.artifacts import (
    BODY_REF_FILE,
    HEAD_FILE,
    ModelFacts,
    VersionRef,
    load_version,
    stage_model,
)
from headstart.kernels.tasks.reporting import Reporter

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
) -> tuple[dict, str]:
    """Cached features for each split, computing (and caching) the missing ones with the body.

    `progress(done, total)` counts the images the body has run over, when it has to run.
    """
    from headstart.kernels.engine.features import FeatureCache
    from headstart.kernels.engine.surgery import split_model

    cache = FeatureCache(store.path("features"), store.path("tmp"))
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
    from headstart.kernels.engine.head_plan import plan_head
    from headstart.kernels.engine.keras_file import save_model
    from headstart.kernels.engine.limits import check_model_limits
    from headstart.kernels.engine.shards import DatasetReader
    from headstart.kernels.engine.surgery import (
        attach_head,
        count_params,
        head_from_features,
        set_trainable,
        split_model,
    )
    from headstart.kernels.engine.training import fit_head, fit_model, reorder_head
    from headstart.kernels.engine.validation import inspect_keras_file

    dataset = DatasetReader(store.path(dataset_key(dataset_id)))
    labels = list(dataset.labels)
    plan = plan_head(ref.kind, ref.labels, labels)
    splits = {"train": dataset.split("train"), "val": dataset.split("val")}
    loaded: dict = {}

    if config.frozen_body and ref.body_sha is not None:
        body_sha = ref.body_ref or ref.body_sha
        features, cache_state = cached_features(
            store, ref, body_sha, dataset_id, splits, config.batch_size, loaded, on_features
        )
        head = current_head(store, ref, loaded) if plan.keep else None
        if head is not None and plan.order is not None:
            reorder_head(head, plan.order)
        head_on_features = head_from_features(int(features["train"].shape[-1]), len(labels), head)
        epochs = fit_head(
            head_on_features,
            (features["train"], splits["train"].labels),
            (features["val"], splits["val"].labels),
            config,
            on_epoch=on_epoch,
            should_stop=should_stop,
        )
        size = save_model(head_on_features, folder / HEAD_FILE, kind="classifier", labels=labels)
        (folder / BODY_REF_FILE).write_text(body_sha + "\n")
        body_facts = inspect_keras_file(store.path(body_key(body_sha)), limits)
        params = body_facts.params + count_params(head_on_features)
        size += body_facts.size_bytes
        check_model_limits(params, size, limits)
        candidate = ModelFacts(
            kind="classifier",
            labels=labels,
            params=params,
            size_bytes=size,
            body_sha=body_sha,
            body_ref=body_sha,
        ).hashed(folder)
    else:
        cache_state = None
        body, head = split_model(load_version(store, ref))
        if plan.keep and head is not None and plan.order is not None:
            reorder_head(head, plan.order)
        trainable = attach_head(body, len(labels), head=head if plan.keep else None)
        set_trainable(body, config.fine_tune_layers)
        epochs = fit_model(
            trainable, splits["train"], splits["val"], config, on_epoch=on_epoch, should_stop=should_stop
        )
        trainable.trainable = True  # the downloaded file should not carry this run's freezing
        candidate = stage_model(trainable, labels, folder, limits)
    return TrainResult(
        epochs=epochs,
        head="kept" if plan.keep else "replaced",
        feature_cache=cache_state,
        candidate=candidate,
        stopped_early=len(epochs) < config.epochs,
    )


# --- the training job --------------------------------------------------------------------------


def train(given: TrainInput, reporter: Reporter) -> TrainResult:
    """The training as a job: it runs on a Dask worker (or in the command line's process).

    The candidate is staged under `given.candidate`, which the service records as the training's
    candidate when the result comes back. An attempt starts by removing what a killed one left
    there; a failed or cancelled one removes what it staged.
    """
    store = ArtifactStore(given.store_url)
    folder = store.path(given.candidate)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
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
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
