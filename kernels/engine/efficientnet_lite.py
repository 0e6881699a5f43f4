"""EfficientNet-Lite as Keras layers, and its weights from a PyTorch state dict of the lukemelas naming.

EfficientNet-Lite (Google, 2020) is EfficientNet without squeeze-and-excite, with ReLU6 and with a
stem and head that do not scale. The weights come from `torch_state.read_state_dict`, so torch is
never needed; every array is checked against the layer it goes to, and a mismatch names the file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from headstart.kernels.engine.torch_state import read_state_dict
from headstart.kernels.errors import Invalid

STEM_FILTERS = 32
FEATURES = 1280
IMAGENET_CLASSES = 1000
BN_EPSILON = 1e-3
# The TF EfficientNet-Lite input convention: RGB 0-255 to about [-1, 1].
INPUT_MEAN, INPUT_STD = 127.0, 128.0
# EfficientNet-B0's stages as (repeats, kernel, first stride, expand ratio, filters in, filters out).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: its width and depth multipliers and the resolution it was trained at."""

    name: str
    width: float
    depth: float
    resolution: int


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant("efficientnet_lite0", 1.0, 1.0, 224),
        LiteVariant("efficientnet_lite1", 1.0, 1.1, 240),
        LiteVariant("efficientnet_lite2", 1.1, 1.2, 260),
    )
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never lose more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


@dataclass(frozen=True)
class Block:
    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def blocks(variant: LiteVariant) -> list[Block]:
    """The MBConv blocks in order; Lite scales neither the first nor the last stage's depth."""
    found: list[Block] = []
    last = len(STAGES) - 1
    for stage, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(STAGES):
        count = repeats if stage in (0, last) else math.ceil(repeats * variant.depth)
        filters_in = round_filters(filters_in, variant.width)
        filters_out = round_filters(filters_out, variant.width)
        for repeat in range(count):
            found.append(
                Block(len(found), kernel, stride if repeat == 0 else 1, expand, filters_in, filters_out)
            )
            filters_in = filters_out
    return found


def preprocessing(variant: LiteVariant) -> keras.layers.Rescaling:
    """`(x - 127) / 128` as a layer, so the model takes raw 0-255 RGB (the input contract)."""
    return keras.layers.Rescaling(
        1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=f"{variant.name}_preprocessing"
    )


def _conv_bn(x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def backbone(variant: LiteVariant, input_shape: tuple[int, int, int]) -> keras.Model:
    """The body as a functional model: scaled RGB in, the 1280-d average-pooled feature vector out."""
    inputs = keras.Input(input_shape, name="scaled_rgb")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem")
    for block in blocks(variant):
        name = f"block{block.index}"
        shortcut = x
        expanded = block.filters_in * block.expand
        if block.expand != 1:
            x = _conv_bn(x, expanded, 1, 1, f"{name}_expand")
        x = keras.layers.DepthwiseConv2D(
            block.kernel, strides=block.stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
        )(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = _conv_bn(x, block.filters_out, 1, 1, f"{name}_project", relu=False)
        if block.stride == 1 and block.filters_in == block.filters_out:
            x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    x = _conv_bn(x, FEATURES, 1, 1, "top")
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=variant.name)


# --- weights -----------------------------------------------------------------------------------

# Keras layer name prefix -> state-dict key prefix. A BatchNorm's four arrays are gamma, beta,
# moving mean and moving variance in Keras' order; PyTorch's `num_batches_tracked` is unused.
_BN_ARRAYS = ("weight", "bias", "running_mean", "running_var")


def _torch_prefix(layer_name: str) -> str | None:
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    if layer_name in fixed:
        return fixed[layer_name]
    match = re.fullmatch(r"block(\d+)_(expand|dw|project)_(conv|bn)", layer_name)
    if match is None:
        return None
    index, part, kind = match.groups()
    torch_name = {
        ("expand", "conv"): "_expand_conv",
        ("expand", "bn"): "_bn0",
        ("dw", "conv"): "_depthwise_conv",
        ("dw", "bn"): "_bn1",
        ("project", "conv"): "_project_conv",
        ("project", "bn"): "_bn2",
    }[(part, kind)]
    return f"_blocks.{index}.{torch_name}"


def _keras_arrays(layer: keras.layers.Layer, prefix: str, state: dict[str, np.ndarray]) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{prefix}.{name}"] for name in _BN_ARRAYS]
    kernel = state[f"{prefix}.weight"]
    if kernel.ndim != 4:
        raise ValueError(f"{prefix}.weight has shape {kernel.shape}, not a convolution's 4 axes")
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [kernel.transpose(2, 3, 0, 1)]  # (C, 1, k, k) -> (k, k, C, 1)
    return [kernel.transpose(2, 3, 1, 0)]  # OIHW -> HWIO


def load_state_dict(path: Path, body: keras.Model, head: keras.layers.Dense | None = None) -> None:
    """Set the body's (and the ImageNet head's) weights from the state dict file at `path`.

    Every weight of the body must come from the file, with the shape the architecture needs; anything
    else is an Invalid that names the file and the first tensor that does not fit.
    """
    state = read_state_dict(path)
    used: set[str] = set()
    try:
        for layer in body.layers:
            if not layer.weights:
                continue
            prefix = _torch_prefix(layer.name)
            if prefix is None:
                raise ValueError(f"no tensor of the file fits layer {layer.name}")
            arrays = _keras_arrays(layer, prefix, state)
            _set(layer, arrays, prefix)
            used.update(k for k in state if k.startswith(prefix + "."))
        if head is not None:
            arrays = [state["_fc.weight"].T, state["_fc.bias"]]
            _set(head, arrays, "_fc")
            used.update(("_fc.weight", "_fc.bias"))
    except KeyError as error:
        raise Invalid(f"{path} does not fit {body.name}: it has no tensor {error.args[0]}") from error
    except ValueError as error:
        raise Invalid(f"{path} does not fit {body.name}: {error}") from error
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    if head is None:
        unused = [k for k in unused if not k.startswith("_fc.")]
    if unused:
        raise Invalid(
            f"{path} does not fit {body.name}: {len(unused)} of its tensors have no layer, first {unused[0]}"
        )


def _set(layer: keras.layers.Layer, arrays: list[np.ndarray], prefix: str) -> None:
    wanted = [tuple(w.shape) for w in layer.weights]
    shapes = [tuple(a.shape) for a in arrays]
    if wanted != shapes:
        raise ValueError(f"{prefix} has shapes {shapes} where the architecture needs {wanted}")
    layer.set_weights([a.astype(w.dtype, copy=False) for a, w in zip(arrays, layer.weights, strict=True)])
