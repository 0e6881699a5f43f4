"""Standardized head training: the features' scale, and folding it into a Dense exactly."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine import standardization
from headstart.kernels.engine.standardization import FeatureScale


def features(count: int = 400, seed: int = 0) -> np.ndarray:
    """ReLU-like features whose scales differ by orders of magnitude, with one always zero."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-9, 1e-3, 1.0, 6.0, 1.0])
    values = np.maximum(rng.normal(0.2, 1.0, (count, 5)), 0) * scales
    values[:, 4] = 0.0
    return values.astype(np.float32)


def dense(dim: int, units: int, seed: int = 1) -> keras.layers.Dense:
    layer = keras.layers.Dense(units, activation="softmax")
    layer.build((None, dim))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 1, (dim, units)).astype(np.float32), rng.normal(0, 1, units)])
    return layer


def logits(layer: keras.layers.Dense, x: np.ndarray) -> np.ndarray:
    kernel, bias = layer.get_weights()
    return np.asarray(x, np.float64) @ kernel + bias


def test_the_scale_is_the_standard_scalers_and_a_constant_feature_keeps_scale_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = features()
    # Read from a memory map in chunks smaller than the split, as a large cache would be.
    monkeypatch.setattr(standardization, "CHUNK", 64)
    np.save(tmp_path / "train.npy", x)  # float32, as the cache keeps features this small
    mapped = np.load(tmp_path / "train.npy", mmap_mode="r")
    scale = FeatureScale.of(mapped)
    exact = np.asarray(mapped, np.float64)
    assert scale.mean == pytest.approx(exact.mean(axis=0), rel=1e-12, abs=1e-30)
    assert scale.scale[:4] == pytest.approx(exact.std(axis=0)[:4], rel=1e-9)
    assert scale.scale[4] == 1.0
    standardized = scale.apply(mapped)
    assert standardized.dtype == np.float32
    assert standardized[:, :4].mean(axis=0) == pytest.approx(np.zeros(4), abs=1e-5)
    assert standardized[:, :4].std(axis=0) == pytest.approx(np.ones(4), rel=1e-4)
    assert not standardized[:, 4].any()


def test_a_feature_constant_up_to_rounding_is_not_blown_up() -> None:
    x = np.full((1000, 2), 0.1, dtype=np.float16)
    x[:, 1] = np.arange(1000) % 2
    scale = FeatureScale.of(x)
    assert scale.scale[0] == 1.0 and scale.scale[1] == pytest.approx(0.5)


def test_fold_and_unfold_keep_the_function_and_invert_each_other() -> None:
    x = features()
    scale = FeatureScale.of(x)
    layer = dense(5, 3)
    raw_logits = logits(layer, x)
    before = [w.copy() for w in layer.get_weights()]

    scale.unfold(layer)
    # The same function, now of standardized features.
    assert logits(layer, scale.apply(x)) == pytest.approx(raw_logits, rel=1e-4, abs=1e-4)
    scale.fold(layer)
    for again, original in zip(layer.get_weights(), before, strict=True):
        assert again.dtype == np.float32
        assert again == pytest.approx(original, rel=1e-5, abs=1e-6)


def test_a_head_trained_on_standardized_features_folds_into_one_raw_dense() -> None:
    x = features()
    scale = FeatureScale.of(x)
    layer = dense(5, 2)
    layer.set_weights([np.array([[0, 0], [0, 0], [1, -1], [0, 0], [0, 0]], np.float32), np.zeros(2)])
    scale.fold(layer)
    # Standardized feature 2 alone decides, through raw weights of 1/std and a bias of -mean/std.
    kernel, bias = layer.get_weights()
    assert kernel[2, 0] == pytest.approx(1 / scale.scale[2], rel=1e-5)
    assert bias[0] == pytest.approx(-scale.mean[2] / scale.scale[2], rel=1e-5)
    assert kernel[4] == pytest.approx([0, 0]) and kernel[0] == pytest.approx([0, 0])
