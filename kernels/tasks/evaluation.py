"""The evaluation tasks: score a model version on a dataset split, or predict labels for image files.

A classifier runs its body through the feature cache, so a body that was ever trained or scored on
a split is not run again: only the head runs on the cached features. The versions of one body that
a leaderboard scores go in one job, so that even a body that never saw the split runs on it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.engine.scoring import EvaluationResult
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import Split
from headstart.kernels.store import ArtifactStore, dataset_key
from headstart.kernels.tasks.artifacts import KEPT_MODELS, VersionRef, head_model
from headstart.kernels.tasks.reporting import Reporter
from headstart.kernels.tasks.training import cached_features, current_head

BATCH = 32


class EvaluateInput(BaseModel):
    """Score versions on one split of a dataset; versions that share a body share its one pass."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    refs: list[VersionRef] = Field(min_length=1)
    dataset_id: int
    split: Split = "test"
    top_k: int = Field(3, ge=1)


class PredictInput(BaseModel):
    """Predict one version's top-k labels for image files in the store."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    ref: VersionRef
    images: list[str]  # store keys of the image files
    names: list[str]  # the name each image is reported by (its upload's file name)
    top_k: int = Field(3, ge=1)
    resize_policy: Literal["center_crop", "stretch", "pad"] = "center_crop"
    limits: IngestLimits = IngestLimits()
    keep_loaded: int = Field(4, ge=0, description="versions a worker keeps loaded (Catalog.kept_models)")


def evaluate_split(given: EvaluateInput, reporter: Reporter) -> list[EvaluationResult]:
    """Score each version on one split of a dataset; the results come in the order of `refs`.

    Versions that share a body (K re-trained variants of one model, say) run it once: its features
    come from the cache, computed by the first version that needs them, and then only each version's
    head runs on them. The job's progress counts the split's images through the body (none when its
    features are cached), then reports the split done once every version is scored.
    """
    from headstart.kernels.engine.inference import predict_batches
    from headstart.kernels.engine.scoring import score
    from headstart.kernels.engine.shards import DatasetReader

    store, split = ArtifactStore(given.store_url), given.split
    progress = reporter.progress("evaluate")
    dataset = DatasetReader(store.path(dataset_key(given.dataset_id)))
    images = dataset.split(split)
    labels = list(dataset.labels)
    truth = np.asarray(images.labels)
    features: dict[str, np.ndarray] = {}  # by body sha
    results = []
    for ref in given.refs:
        body_sha = ref.body_ref or ref.body_sha
        if ref.kind != "classifier" or body_sha is None:
            # A feature vector has no labels to score: the result says so and carries no accuracy.
            nothing = np.zeros((0, 0), np.float32)
            results.append(score(nothing, np.zeros(0, np.int64), model_labels=None, dataset_labels=labels))
            continue
        loaded: dict = {}
        if body_sha not in features:
            found, _ = cached_features(
                store, ref, body_sha, given.dataset_id, {split: images}, BATCH, loaded, progress
            )
            features[body_sha] = found[split]
        head = current_head(store, ref, loaded)
        probabilities = predict_batches(
            head_model(head, features[body_sha].shape[-1]), [features[body_sha]], batch_size=256
        )
        results.append(
            score(
                probabilities,
                truth,
                model_labels=list(ref.labels or []),
                dataset_labels=labels,
                top_k=given.top_k,
                names=[f"{split}[{i}]" for i in range(len(images))],
            )
        )
    progress(len(images), len(images))
    return results


def predict_files(given: PredictInput, reporter: Reporter) -> EvaluationResult:
    """Predict a version's top-k labels for each image; there is no truth, so no accuracy."""
    from headstart.kernels.engine.images import decode_image
    from headstart.kernels.engine.inference import predict_batches
    from headstart.kernels.engine.scoring import score

    store, ref = ArtifactStore(given.store_url), given.ref
    model = KEPT_MODELS.get(store, ref, given.keep_loaded)
    progress = reporter.progress("predict")

    def decode(key: str, name: str) -> np.ndarray:
        try:
            data = store.path(key).read_bytes()
            return decode_image(data, max_pixels=given.limits.max_image_pixels, policy=given.resize_policy)
        except Invalid as error:
            raise Invalid(f"{name}: {error}") from None

    pairs = list(zip(given.images, given.names, strict=True))
    # A few images run as one batch of their own length, not padded to BATCH: one image through
    # EfficientNet-Lite0 is one image's work. (Keras traces a batch length it has not seen, and past
    # the second one traces a general length, so the kept model does not trace for every request.)
    batch = min(BATCH, len(pairs))

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, len(pairs), batch):
            yield np.stack([decode(key, name) for key, name in pairs[start : start + batch]])

    probabilities = predict_batches(
        model, batches(), batch_size=batch, progress=lambda done: progress(done, len(pairs))
    )
    model_labels = list(ref.labels) if ref.kind == "classifier" and ref.labels else None
    return score(
        probabilities,
        None,
        model_labels=model_labels,
        dataset_labels=model_labels or [],
        top_k=given.top_k,
        names=list(given.names),
    )
