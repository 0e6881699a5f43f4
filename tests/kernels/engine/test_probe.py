"""The standard linear probe: scikit-learn's logistic regression on standardized features."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.kernels.engine.probe import CHUNK, fit_probe


def blobs(rng: np.random.Generator, per_label: int, labels: list[int], dim: int = 16) -> tuple:
    centers = {label: rng.normal(0, 4, dim) for label in range(max(labels) + 1)}
    x = np.concatenate([rng.normal(centers[label], 1.0, (per_label, dim)) for label in labels])
    y = np.repeat(labels, per_label)
    return x.astype(np.float16), y


def test_the_probe_separates_separable_features_and_sums_to_one() -> None:
    rng = np.random.default_rng(0)
    x, y = blobs(rng, 40, [0, 1, 2])
    fitted = fit_probe(x, y)
    probabilities = fitted.probabilities(x, 3)
    assert probabilities.shape == (120, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert float(np.mean(probabilities.argmax(1) == y)) == 1.0


def test_a_label_absent_from_the_train_split_gets_no_probability() -> None:
    rng = np.random.default_rng(1)
    x, y = blobs(rng, 30, [0, 2])  # label 1 of three has no training image
    probabilities = fit_probe(x, y).probabilities(x, 3)
    assert np.all(probabilities[:, 1] == 0.0) and np.allclose(probabilities.sum(axis=1), 1.0)


def test_constant_features_and_more_rows_than_a_chunk_are_fine() -> None:
    rng = np.random.default_rng(2)
    x, y = blobs(rng, CHUNK // 2 + 7, [0, 1], dim=8)
    x = np.concatenate([x, np.full((len(x), 3), 0.5, np.float16)], axis=1)  # three constant features
    fitted = fit_probe(x, y)
    assert fitted.scale.constant[-3:].all()
    assert float(np.mean(fitted.probabilities(x, 2).argmax(1) == y)) > 0.99


def test_one_label_is_nothing_to_tell_apart() -> None:
    x = np.zeros((10, 4), np.float16)
    with pytest.raises(ValueError, match="holds 1 label"):
        fit_probe(x, np.zeros(10, np.int64))
