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
# cache values summed in float64): it is left unscaled, as StandardScaler does, and reads as exactly
# zero, so that its weight stays where it starts instead of growing without bound (and its rounding
# noise, ~1e-16, never makes subnormal gradients, which slow float arithmetic ~100x).
CONSTANT = 1e-6


@dataclass(frozen=True)
class FeatureScale:
    """Per-feature mean and scale of a training split's features (float64)."""

    mean: np.ndarray
    scale: np.ndarray
    constant: np.ndarray  # bool per feature: constant up to rounding (CONSTANT)

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureScale:
        """Measure the features in two passes over chunks, so a memory-mapped cache is never loaded whole."""
        count, dim = features.shape
        if count == 0:
            return cls(np.zeros(dim), np.ones(dim), np.ones(dim, bool))
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
        return cls(mean, np.where(constant, 1.0, std), constant)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Standardized float32 features, as the head trains on them; constant ones read as zero."""
        standardized = ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)
        standardized[:, self.constant] = 0.0
        return standardized

    def unfold_weights(self, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head on raw features as the same function on standardized ones (float64)."""
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        return kernel * self.scale[:, None], bias + self.mean @ kernel

    def fold_weights(self, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head on standardized features as the same function on raw ones (float64)."""
        raw = np.asarray(kernel, np.float64) / self.scale[:, None]
        return raw, np.asarray(bias, np.float64) - self.mean @ raw

    def unfold(self, dense: keras.layers.Dense) -> None:
        """Turn a Dense head on raw features into the same function on standardized ones, in place."""
        _set_weights(dense, *self.unfold_weights(*dense.get_weights()))

    def fold(self, dense: keras.layers.Dense) -> None:
        """Turn a Dense head on standardized features into the same function on raw ones, in place."""
        _set_weights(dense, *self.fold_weights(*dense.get_weights()))


def _set_weights(dense: keras.layers.Dense, kernel: np.ndarray, bias: np.ndarray) -> None:
    dtype = dense.kernel.dtype
    dense.set_weights([kernel.astype(dtype), bias.astype(dtype)])
