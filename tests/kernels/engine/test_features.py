"""The feature cache: computed once per (body, dataset, split), stored atomically, never lossy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.kernels.engine.features import FeatureCache
from headstart.kernels.engine.ingest import ingest
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.engine.shards import DatasetReader


@pytest.fixture(scope="module")
def train_split(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    dest = tmp_path_factory.mktemp("dataset")
    ingest(shapes_folder, dest, limits=IngestLimits())
    return DatasetReader(dest).split("train")


def body(scale: float):
    import keras

    return keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Rescaling(scale),
            keras.layers.Conv2D(4, 3, strides=8, kernel_initializer="ones", bias_initializer="zeros"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


def test_features_are_computed_once_and_read_back(tmp_path: Path, train_split) -> None:
    cache = FeatureCache(tmp_path / "features", tmp_path / "tmp")
    model = body(1 / 255)
    assert cache.load("sha", 1, "train") is None
    done: list[int] = []
    computed = cache.compute(model, train_split, "sha", 1, "train", batch_size=8, progress=done.append)
    assert sum(done) == len(train_split) == len(computed)
    assert computed.dtype == np.float16
    images, _ = train_split.read(np.arange(len(train_split)))
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(np.asarray(computed, dtype=np.float32), expected, rtol=2e-3)
    again = cache.load("sha", 1, "train")
    np.testing.assert_array_equal(again, computed)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_tiny_features_keep_float32_rather_than_underflow(tmp_path: Path, train_split) -> None:
    cache = FeatureCache(tmp_path / "features", tmp_path / "tmp")
    computed = cache.compute(body(1e-14), train_split, "tiny", 1, "train", batch_size=8)
    assert computed.dtype == np.float32
    assert np.abs(computed).max() > 0
