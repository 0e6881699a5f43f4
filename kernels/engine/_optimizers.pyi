"""Types of the C extension built from _optimizers.c: the optimizer steps of head_fit.Stack."""

from typing import Any

import numpy as np

_Matrix = np.ndarray[Any, np.dtype[np.float32]]

def adam(
    weights: _Matrix,
    moment: _Matrix,
    velocity: _Matrix,
    gradient: _Matrix,
    square_scale: float,
    epsilon: float,
    step: float,
    decay: _Matrix | None = None,
    columns: int = 1,
) -> None: ...
def rmsprop(weights: _Matrix, velocity: _Matrix, gradient: _Matrix, rho: float, epsilon: float) -> None: ...
