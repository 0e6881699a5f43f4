"""A compiled, fixed-shape, optionally mixed-precision forward pass over uint8 image batches.

Every call sees exactly `batch_size` rows: a short batch is padded on the host and the padding's
outputs are sliced off, so the function is traced once. Images travel to the device as uint8 (a
quarter of float32's bytes) and are cast there. On a GPU the body runs in mixed bfloat16 by default;
on a CPU it stays float32, where it gives model(x)'s outputs to float tolerance.

The compile mechanism is the one thing that differs per Keras backend; `devices.compile_inference`
chooses it (with the GPU checks, the only code of the engine that imports a backend's own library), so
this module speaks keras alone.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart.kernels.engine.devices import compile_inference, device_description, gpu_available
from headstart.kernels.errors import Invalid

# gpu_available and device_description are devices' own, offered here beside the forward they choose.
__all__ = [
    "STAGING_THREADS",
    "CompiledForward",
    "compiled_forward",
    "device_description",
    "gpu_available",
    "synchronize",
    "with_precision",
]

if TYPE_CHECKING:
    import keras

FLOAT32 = "float32"
# bfloat16 keeps float32's range, so a network's activations cannot overflow as they can in float16, and
# every GPU since Ampere multiplies it at full tensor-core speed.
GPU_PRECISION = "mixed_bfloat16"
PRECISIONS = (FLOAT32, "mixed_bfloat16", "mixed_float16")
# Host threads that read batches from the mapped shards, pad them and copy them to the device while it
# computes earlier batches. A copy runs at a few GB/s per thread, and a fast GPU eats about 6 GB/s of
# uint8 images, so one thread is not enough; the batches staged ahead bound the device memory used.
STAGING_THREADS = min(4, os.cpu_count() or 1)


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """A copy of `model` whose layers compute in `precision` (e.g. "mixed_bfloat16"), same weights.

    Layers keep their dtype policy from when they were built, so a float32 model cannot be switched to
    mixed precision in place, and changing the caller's layers would change the caller's model (a body
    shares its layers with the stored model). The copy keeps float32 variables, as mixed policies do.
    """
    import keras

    if precision not in PRECISIONS:
        raise Invalid(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")

    def recast(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = precision
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=recast, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def synchronize(tensor: Any) -> None:
    """Wait until the device has computed `tensor`; timings that skip this measure only the dispatch."""
    import keras

    if keras.backend.backend() == "jax":
        tensor.block_until_ready()
    else:
        keras.ops.convert_to_numpy(tensor)


class CompiledForward:
    """`model`'s inference forward pass, compiled once for (batch_size, *input shape) uint8 batches.

    `stage` pads a batch and sends it to the device, `run` computes on a staged batch and returns the
    device's float32 outputs, and `stream` does both over many batches with the next batch's copy
    overlapping the current computation. `traces` counts how often the function was traced.
    `precision` defaults to mixed bfloat16 on a GPU and float32 elsewhere; `jit_compile` (TensorFlow
    only; JAX always compiles with XLA) defaults to XLA on a GPU.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        batch_size: int,
        precision: str | None = None,
        jit_compile: bool | None = None,
    ) -> None:
        import keras

        if batch_size < 1:
            raise Invalid(f"batch_size must be at least 1, not {batch_size}")
        on_gpu = gpu_available()
        self.precision = precision or (GPU_PRECISION if on_gpu else FLOAT32)
        self.source = model
        self.model = model if self.precision == FLOAT32 else with_precision(model, self.precision)
        self.batch_size = batch_size
        self.input_shape = tuple(model.input_shape[1:])
        if any(size is None for size in self.input_shape):
            raise Invalid(f"the model's input shape {model.input_shape} is not fixed")
        self.backend = keras.backend.backend()
        self.traces = 0
        self._run = compile_inference(
            self.model,
            self._forward,
            (batch_size, *self.input_shape),
            jit_compile=on_gpu if jit_compile is None else jit_compile,
        )

    def _forward(self, images: Any, call: Callable[[Any], Any]) -> Any:
        import keras

        # Python runs this only while tracing (JAX, TensorFlow), so the count is the number of traces;
        # PyTorch runs eagerly, and there it counts calls.
        self.traces += 1
        # The input contract is float 0-255; the uint8 -> float cast runs on the device.
        outputs = call(keras.ops.cast(images, FLOAT32))
        return keras.ops.cast(outputs, FLOAT32)

    def stage(self, batch: np.ndarray) -> Any:
        """Pad a uint8 batch of at most batch_size rows to exactly batch_size and put it on the device."""
        import keras

        batch = np.asarray(batch)
        if batch.dtype != np.uint8 or batch.shape[1:] != self.input_shape:
            raise Invalid(
                f"expected uint8 batches of shape (n, *{self.input_shape}), got {batch.shape} {batch.dtype}"
            )
        if not 0 < len(batch) <= self.batch_size:
            raise Invalid(f"a staged batch needs 1 to {self.batch_size} rows, not {len(batch)}")
        if len(batch) < self.batch_size:
            # A fresh buffer every time: a CPU device may alias host memory, so a reused buffer could
            # change under a batch still in flight.
            padded = np.zeros((self.batch_size, *self.input_shape), dtype=np.uint8)
            padded[: len(batch)] = batch
            batch = padded
        return keras.ops.convert_to_tensor(batch)

    def run(self, staged: Any) -> Any:
        """The float32 outputs of a staged batch, left on the device (padding rows included)."""
        return self._run(staged)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The float32 outputs of one uint8 batch of at most batch_size rows, as numpy."""
        return _to_host(self.run(self.stage(batch)), len(batch))

    def stream(
        self, batches: Iterable[np.ndarray], *, threads: int = STAGING_THREADS
    ) -> Iterator[np.ndarray]:
        """Yield the float32 outputs of `batches` in order, one array per batch_size rows or fewer.

        Batches longer than batch_size are cut into batch_size pieces, each yielding its own array.
        `threads` host threads stage up to twice as many batches ahead while the device computes, and an
        output is fetched only after the next batch was dispatched, so the device does not wait for the
        host between batches.
        """
        if self.model is not self.source:
            # The copy has the source's weights as of its making; the source may have changed since.
            for mine, theirs in zip(self.model.weights, self.source.weights, strict=True):
                mine.assign(theirs.value)
        pieces = self._pieces(batches)
        with ThreadPoolExecutor(threads, thread_name_prefix="headstart-stage") as pool:
            staged: deque[tuple[Future, int]] = deque()

            def stage_next() -> None:
                piece = next(pieces, None)
                if piece is not None:
                    staged.append((pool.submit(self.stage, piece), len(piece)))

            for _ in range(2 * threads):
                stage_next()
            pending: tuple[Any, int] | None = None
            while staged:
                future, rows = staged.popleft()
                stage_next()
                outputs = self.run(future.result())
                if pending is not None:
                    yield _to_host(*pending)
                pending = (outputs, rows)
            if pending is not None:
                yield _to_host(*pending)

    def _pieces(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in batches:
            for start in range(0, len(batch), self.batch_size):
                yield batch[start : start + self.batch_size]


def _to_host(outputs: Any, rows: int) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(outputs)[:rows], dtype=np.float32)


# The last few compiled forwards, so that the splits of one training (train, val, test) over the same
# body compile once. Entries hold their model, so an id cannot be reused while its entry lives.
_RECENT: OrderedDict[tuple[int, int, str | None], CompiledForward] = OrderedDict()
_RECENT_SIZE = 2
_RECENT_LOCK = threading.Lock()


def compiled_forward(model: keras.Model, *, batch_size: int, precision: str | None = None) -> CompiledForward:
    """A CompiledForward for `model`, reused while it is among the last few asked for."""
    key = (id(model), batch_size, precision)
    with _RECENT_LOCK:
        forward = _RECENT.get(key)
        if forward is None or forward.source is not model:
            forward = CompiledForward(model, batch_size=batch_size, precision=precision)
            _RECENT[key] = forward
        _RECENT.move_to_end(key)
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
    return forward
