"""The evaluation task: score a model version on a dataset split or on a list of image files.

A classifier runs its body through the feature cache, so a body that was ever trained or scored on
a split is not run again: only the head runs on the cached features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from headstart.extension.jobs.artifacts import VersionRef, load_version
from headstart.extension.jobs.training import cached_features, current_head
from headstart.extension.store import ArtifactStore, dataset_key
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.errors import Invalid

BATCH = 32


def evaluate_split(
    store_root: str,
    ref: VersionRef,
    dataset_id: int,
    split: str,
    *,
    top_k: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score a version on one split of a dataset; the result is `EvaluationResult.to_dict()`.

    `progress(done, total)` counts the split's images through the body (none when its features
    are cached), then reports the split done once scored.
    """
    from headstart.kernels.engine.inference import predict_batches
    from headstart.kernels.engine.scoring import score
    from headstart.kernels.engine.shards import DatasetReader

    store = ArtifactStore(store_root)
    dataset = DatasetReader(store.path(dataset_key(dataset_id)))
    images = dataset.split(split)
    labels = list(dataset.labels)
    body_sha = ref.body_ref or ref.body_sha
    if ref.kind != "classifier" or body_sha is None:
        # A feature vector has no labels to score: the result says so and carries no accuracy.
        nothing = np.zeros((0, 0), np.float32)
        return score(nothing, np.zeros(0, np.int64), model_labels=None, dataset_labels=labels).to_dict()
    loaded: dict = {}
    features, _ = cached_features(store, ref, body_sha, dataset_id, {split: images}, BATCH, loaded, progress)
    head = current_head(store, ref, loaded)
    probabilities = predict_batches(
        _head_model(head, features[split].shape[-1]), [features[split]], batch_size=256
    )
    names = [f"{split}[{i}]" for i in range(len(images))]
    result = score(
        probabilities,
        np.asarray(images.labels),
        model_labels=list(ref.labels or []),
        dataset_labels=labels,
        top_k=top_k,
        names=names,
    )
    if progress is not None:
        progress(len(images), len(images))
    return result.to_dict()


def _head_model(head: object, feature_dim: int) -> object:
    import keras

    return keras.Sequential([keras.Input((int(feature_dim),)), head])


def evaluate_files(
    store_root: str,
    ref: VersionRef,
    files: list[Path],
    limits: IngestLimits,
    *,
    top_k: int = 3,
    resize_policy: str = "center_crop",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Predict a version's top-k labels for each image file; there is no truth, so no accuracy."""
    from headstart.kernels.engine.images import decode_image
    from headstart.kernels.engine.inference import predict_batches
    from headstart.kernels.engine.scoring import score

    store = ArtifactStore(store_root)
    model = load_version(store, ref)

    def decode(path: Path) -> np.ndarray:
        try:
            return decode_image(path.read_bytes(), max_pixels=limits.max_image_pixels, policy=resize_policy)
        except Invalid as error:
            raise Invalid(f"{path.name}: {error}") from None

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, len(files), BATCH):
            yield np.stack([decode(Path(f)) for f in files[start : start + BATCH]])

    probabilities = predict_batches(model, batches(), batch_size=BATCH, progress=progress)
    model_labels = list(ref.labels) if ref.kind == "classifier" and ref.labels else None
    result = score(
        probabilities,
        None,
        model_labels=model_labels,
        dataset_labels=model_labels or [],
        top_k=top_k,
        names=[Path(f).name for f in files],
    )
    return result.to_dict()
