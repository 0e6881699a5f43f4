"""Standardized head training: a Dense head learns on features scaled to zero mean and unit variance,
then the scaling is folded into its kernel and bias, so the saved head is still one plain Dense.

A frozen body's features differ in scale from one feature to the next by orders of magnitude (ReLU6
features from 0 to 6, many always zero; an untrained body's near 1e-11). Gradient descent on such
inputs crawls along the small ones, which is why a head on raw features lags the standard linear
probe (StandardScaler + LogisticRegression). Standardizing is affine, so
`dense((x - mean) / scale)` is exactly `dense'(x)` with `kernel' = kernel / scale` and
`bias' = bias - mean @ kernel'`: the model keeps the input contract and its head stays one layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

# Rows read at a time from memory-mapped features, to bound memory while taking statistics.
CHUNK = 8192
# A feature whose spread is below this fraction of its mean is constant up to rounding (float16
# cache values summed in float64): it is left unscaled, as StandardScaler does, so that its weight
# stays where it starts instead of growing without bound.
CONSTANT = 1e-6


@dataclass(frozen=True)
class FeatureScale:
    """Per-feature mean and scale of a training split's features (float64)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureScale:
        """Measure the features in two passes over chunks, so a memory-mapped cache is never loaded whole."""
        count, dim = features.shape
        if count == 0:
            return cls(np.zeros(dim), np.ones(dim))
        total = np.zeros(dim)
        for start in range(0, count, CHUNK):
            total += np.asarray(features[start : start + CHUNK], dtype=np.float64).sum(axis=0)
        mean = total / count
        squares = np.zeros(dim)
        for start in range(0, count, CHUNK):
            chunk = np.asarray(features[start : start + CHUNK], dtype=np.float64) - mean
            squares += (chunk * chunk).sum(axis=0)
        std = np.sqrt(squares / count)
        constant = std <= CONSTANT * np.abs(mean)
        return cls(mean, np.where(constant, 1.0, std))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Standardized float32 features, as the head trains on them."""
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)

    def unfold(self, dense: keras.layers.Dense) -> None:
        """Turn a head on raw features into the same function on standardized ones, in place."""
        kernel, bias = _weights(dense)
        _set_weights(dense, kernel * self.scale[:, None], bias + self.mean @ kernel)

    def fold(self, dense: keras.layers.Dense) -> None:
        """Turn a head on standardized features into the same function on raw ones, in place."""
        kernel, bias = _weights(dense)
        raw = kernel / self.scale[:, None]
        _set_weights(dense, raw, bias - self.mean @ raw)


def _weights(dense: keras.layers.Dense) -> tuple[np.ndarray, np.ndarray]:
    kernel, bias = dense.get_weights()
    return np.asarray(kernel, dtype=np.float64), np.asarray(bias, dtype=np.float64)


def _set_weights(dense: keras.layers.Dense, kernel: np.ndarray, bias: np.ndarray) -> None:
    dtype = dense.kernel.dtype
    dense.set_weights([kernel.astype(dtype), bias.astype(dtype)])
