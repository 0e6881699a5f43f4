"""The C optimizer steps: the same numbers as their NumPy passes, and clear errors on bad buffers."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.kernels.engine import _optimizers

ROWS, COLUMNS = 33, 40  # odd sizes: the vector loops' tails run too


def _arrays(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((ROWS, COLUMNS)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("with_decay", [False, True])
def test_adam_is_the_numpy_passes_in_one(with_decay: bool) -> None:
    weights, moment, gradient = _arrays(0, 3)
    velocity = np.abs(_arrays(1, 1)[0])
    decay = np.linspace(0.9, 1.0, COLUMNS, dtype=np.float32)
    square, epsilon, step = 0.3, 1e-7, -0.01

    expected_w = weights * decay if with_decay else weights.copy()
    expected_m = moment + gradient
    expected_v = velocity + np.float32(square) * (gradient * gradient)
    expected_w += np.float32(step) * (expected_m / (np.sqrt(expected_v) + np.float32(epsilon)))
    before = gradient.copy()

    _optimizers.adam(
        weights, moment, velocity, gradient, square, epsilon, step,
        decay=decay if with_decay else None, columns=COLUMNS,
    )  # fmt: skip
    np.testing.assert_allclose(moment, expected_m, rtol=1e-6)
    np.testing.assert_allclose(velocity, expected_v, rtol=1e-6)
    np.testing.assert_allclose(weights, expected_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(gradient, before)


def test_rmsprop_is_the_numpy_passes_in_one() -> None:
    weights, gradient = _arrays(2, 2)
    velocity = np.abs(_arrays(3, 1)[0])
    rho, epsilon = 0.9, 1e-7

    expected_v = np.float32(rho) * velocity + np.float32(1 - rho) * (gradient * gradient)
    expected_w = weights - gradient / np.sqrt(expected_v + np.float32(epsilon))

    _optimizers.rmsprop(weights, velocity, gradient, rho=rho, epsilon=epsilon)
    np.testing.assert_allclose(velocity, expected_v, rtol=1e-6)
    np.testing.assert_allclose(weights, expected_w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda a: a[1].astype(np.float64), TypeError, "moment must be float32"),
        (lambda a: np.asfortranarray(a[1]), TypeError, "moment must be a writable C-contiguous"),
        (lambda a: a[1][:, ::2], TypeError, "moment must be a writable C-contiguous"),
        (lambda a: a[1][:-1], ValueError, f"moment has {(ROWS - 1) * COLUMNS} elements"),
        (lambda a: a[0][:], ValueError, "weights and moment share memory"),
        (lambda a: [1.0] * ROWS * COLUMNS, TypeError, "moment must be a writable"),
    ],
    ids=["float64", "fortran", "strided", "short", "aliased", "a-list"],
)
def test_a_bad_buffer_is_refused_and_nothing_changes(change, error, message) -> None:  # type: ignore[no-untyped-def]
    arrays = _arrays(4, 4)
    before = [a.copy() for a in arrays]
    bad = change(arrays)
    with pytest.raises(error, match=message):
        _optimizers.adam(arrays[0], bad, arrays[2], arrays[3], 0.1, 1e-7, -0.01, columns=COLUMNS)
    for array, original in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(array, original)


def test_a_read_only_weight_matrix_and_a_wrong_decay_are_refused() -> None:
    weights, moment, velocity, gradient = _arrays(5, 4)
    frozen = weights.copy()
    frozen.flags.writeable = False
    with pytest.raises(TypeError, match="weights must be a writable"):
        _optimizers.rmsprop(frozen, velocity, gradient, rho=0.9, epsilon=1e-7)
    with pytest.raises(ValueError, match=f"decay has {COLUMNS - 1} elements, not {COLUMNS}"):
        _optimizers.adam(
            weights, moment, velocity, gradient, 0.1, 1e-7, -0.01,
            decay=np.ones(COLUMNS - 1, np.float32), columns=COLUMNS,
        )  # fmt: skip
    with pytest.raises(ValueError, match="are not rows of 7 columns"):
        _optimizers.adam(weights, moment, velocity, gradient, 0.1, 1e-7, -0.01, columns=7)
    with pytest.raises(ValueError, match="columns must be at least 1"):
        _optimizers.adam(weights, moment, velocity, gradient, 0.1, 1e-7, -0.01, columns=0)
    np.testing.assert_array_equal(weights, _arrays(5, 4)[0])
