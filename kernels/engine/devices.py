"""The engine's one door to a Keras backend's own library: JAX, TensorFlow or PyTorch.

Everything else in `kernels/` speaks `keras` and `keras.ops` only, so the engine runs on any Keras
backend. Four things have no backend-neutral Keras API, and they live here: whether a GPU is
present, its name, compiling a forward pass over fixed-shape batches (`jax.jit` over
`stateless_call`, `tf.function`, or an eager call under `torch.no_grad`), and converting a
SavedModel to a TFLite file. Each library is imported lazily: a backend's only when it is the
running backend, TensorFlow's converter only for a TFLite export, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headstart.kernels.errors import Invalid

if TYPE_CHECKING:
    import keras

# forward(images, call) -> outputs, where call(x) runs the model on x.
Forward = Callable[[Any, Callable[[Any], Any]], Any]


def backend() -> str:
    import keras

    return keras.backend.backend()


def gpu_available() -> bool:
    """Whether the current Keras backend sees a GPU (without starting one where it does not)."""
    name = backend()
    if name == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if name == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def device_description() -> str:
    """The device that compiled forwards run on, in words, e.g. "gpu: NVIDIA H100 80GB HBM3"."""
    if not gpu_available():
        return "cpu"
    name = backend()
    if name == "jax":
        import jax

        return f"gpu: {jax.devices()[0].device_kind}"
    if name == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return f"gpu: {details.get('device_name', 'unknown')}"
    import torch

    return f"gpu: {torch.cuda.get_device_name()}"


def tflite_from_saved_model(saved_model: str) -> bytes:
    """The TFLite file of a SavedModel folder. Only TensorFlow's converter makes one, whatever the
    Keras backend (Keras writes the SavedModel itself, through `model.export`)."""
    import tensorflow as tf

    return bytes(tf.lite.TFLiteConverter.from_saved_model(saved_model).convert())


def compile_inference(
    model: keras.Model, forward: Forward, batch_shape: tuple[int, ...], *, jit_compile: bool
) -> Callable[[Any], Any]:
    """`forward` over `model` in inference mode, compiled once for uint8 batches of `batch_shape`.

    `jit_compile` asks TensorFlow for XLA; JAX always compiles with XLA, PyTorch runs eagerly.
    """
    name = backend()
    if name == "jax":
        import jax

        def stateless(trainable: list, non_trainable: list, images: Any) -> Any:
            # Variables are arguments rather than captured constants, so they are not baked into
            # the compiled program and later weight updates are seen.
            return forward(
                images, lambda x: model.stateless_call(trainable, non_trainable, x, training=False)[0]
            )

        jitted = jax.jit(stateless)

        def run_jax(images: Any) -> Any:
            trainable = [variable.value for variable in model.trainable_variables]
            non_trainable = [variable.value for variable in model.non_trainable_variables]
            return jitted(trainable, non_trainable, images)

        return run_jax
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(
            lambda images: forward(images, lambda x: model(x, training=False)),
            input_signature=[tf.TensorSpec(batch_shape, tf.uint8)],
            jit_compile=jit_compile,
        )
    if name == "torch":
        import torch

        def run_torch(images: Any) -> Any:
            with torch.no_grad():
                return forward(images, lambda x: model(x, training=False))

        return run_torch
    raise Invalid(f"no compiled forward for the Keras backend {name!r}")
