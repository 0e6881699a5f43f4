"""Runs a model over a stream of image or feature batches through one compiled predict function, so
that inference traces once per model rather than once per call or per batch shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from headstart.kernels.errors import Invalid

if TYPE_CHECKING:
    import keras


def _output_width(model: keras.Model) -> tuple[int, ...]:
    shape = tuple(model.output_shape[1:])
    if any(size is None for size in shape):
        raise Invalid(f"the model's output shape {model.output_shape} is not fixed")
    return shape


def predict_batches(
    model: keras.Model,
    batches: Iterable[np.ndarray],
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Predict every row of `batches` (uint8 images or float features, any batch lengths) and return
    the outputs as one float32 array; `progress` gets the number of rows done after each step."""
    if batch_size < 1:
        raise Invalid(f"batch_size must be at least 1, not {batch_size}")
    outputs: list[np.ndarray] = []
    # Incoming rows are copied into one reused buffer of exactly batch_size rows, so that every call
    # sees the same shape and dtype. predict_on_batch runs the model's own cached predict function
    # (a tf.function on TensorFlow, a jitted function on JAX), built once per model, on every backend;
    # model.predict instead builds a data adapter and callbacks on each call, and a new batch length
    # would trace again.
    buffer: np.ndarray | None = None
    filled = 0
    done = 0

    def run(chunk: np.ndarray, rows: int) -> None:
        nonlocal done
        # uint8 goes in unconverted: the model casts on the device, and the transfer is 4x smaller.
        # float16 features are widened here instead: the heads compute in float32 anyway, and on a CPU
        # without AVX-512 FP16 oneDNN cannot run the half-precision cast and prints an error line
        # ("oneDNN supports DT_HALF only on platforms with AVX-512") before it falls back to Eigen.
        if chunk.dtype == np.float16:
            chunk = chunk.astype(np.float32)
        result = model.predict_on_batch(chunk)
        if isinstance(result, list | tuple | dict):
            raise Invalid("predict_batches needs a model with a single output")
        outputs.append(np.asarray(result[:rows], dtype=np.float32))
        done += rows
        if progress is not None:
            progress(done)

    for incoming in batches:
        batch = np.asarray(incoming)
        if batch.ndim < 2:
            raise Invalid(f"a batch must have a leading batch axis, not shape {batch.shape}")
        if buffer is None:
            buffer = np.zeros((batch_size, *batch.shape[1:]), dtype=batch.dtype)
        elif batch.shape[1:] != buffer.shape[1:] or batch.dtype != buffer.dtype:
            raise Invalid(
                f"batches differ: {batch.shape[1:]} {batch.dtype} after {buffer.shape[1:]} {buffer.dtype}"
            )
        start = 0
        if filled:
            take = min(batch_size - filled, len(batch))
            buffer[filled : filled + take] = batch[:take]
            filled += take
            start = take
            if filled == batch_size:
                run(buffer, batch_size)
                filled = 0
        # Whole chunks of a large incoming batch are slices of it and need no copy.
        while len(batch) - start >= batch_size:
            run(batch[start : start + batch_size], batch_size)
            start += batch_size
        rest = len(batch) - start
        if rest:
            buffer[:rest] = batch[start:]
            filled = rest
    if buffer is not None and filled:
        # The stale rows past `filled` are padding: they keep the shape fixed and their outputs are
        # dropped.
        run(buffer, filled)

    if not outputs:
        return np.zeros((0, *_output_width(model)), dtype=np.float32)
    return np.concatenate(outputs, axis=0)
