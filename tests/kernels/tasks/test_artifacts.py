"""The versions a worker keeps loaded for predictions: keyed by content, bounded, least recent out."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from headstart.kernels.store import ArtifactStore, file_sha256, version_key
from headstart.kernels.tasks.artifacts import MODEL_FILE, KeptModels, VersionRef


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"))


def stored_version(store: ArtifactStore, model_id: int, units: int) -> VersionRef:
    folder = store.path(version_key(model_id, 1))
    folder.mkdir(parents=True)
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="softmax")]).save(
        folder / MODEL_FILE
    )
    labels = [f"l{n}" for n in range(units)]
    return VersionRef(
        model_id=model_id,
        version=1,
        folder=version_key(model_id, 1),
        kind="classifier",
        labels=labels,
        body_sha=None,
        content_sha=file_sha256(folder / MODEL_FILE),
    )


def test_a_kept_version_is_not_loaded_again_and_the_least_recent_goes_first(store) -> None:
    kept = KeptModels()
    first, second, third = (stored_version(store, n, n + 1) for n in (1, 2, 3))
    model = kept.get(store, first, keep=2)
    assert model.output_shape == (None, 2)
    assert kept.get(store, first, keep=2) is model
    kept.get(store, second, keep=2)
    kept.get(store, first, keep=2)  # first is now the most recent
    kept.get(store, third, keep=2)
    assert kept.contents() == [first.content, third.content]
    assert kept.get(store, first, keep=2) is model
    assert kept.get(store, second, keep=2).output_shape == (None, 3)  # loaded again


def test_the_same_content_under_another_id_is_the_same_model(store) -> None:
    kept = KeptModels()
    ref = stored_version(store, 1, 2)
    twin = ref.model_copy(update={"model_id": 9})
    assert kept.get(store, twin, keep=4) is kept.get(store, ref, keep=4)


def test_an_unknown_content_or_keep_zero_loads_every_time(store) -> None:
    kept = KeptModels()
    ref = stored_version(store, 1, 2)
    unknown = ref.model_copy(update={"content_sha": None})
    assert unknown.content is None
    assert kept.get(store, unknown, keep=4) is not kept.get(store, unknown, keep=4)
    assert kept.get(store, ref, keep=0) is not kept.get(store, ref, keep=0)
    assert kept.contents() == []


def test_a_version_with_a_shared_body_is_named_by_both_files() -> None:
    ref = VersionRef(
        model_id=1,
        version=1,
        folder="models/1/v1",
        kind="classifier",
        labels=["a"],
        body_sha="b" * 64,
        body_ref="b" * 64,
        content_sha="h" * 64,
    )
    assert ref.content == "h" * 64 + "+" + "b" * 64
