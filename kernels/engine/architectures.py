"""The zoo: architectures the platform can build, each as a Sequential taking raw 0-255 RGB images with its
family's preprocessing as built-in layers inside, so every model keeps the input contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from headstart.kernels.engine.surgery import HEAD_NAME, INPUT_SHAPE, PREPROCESSING_SUFFIX, short_reason
from headstart.kernels.errors import Invalid, WeightsUnavailable
from headstart.kernels.schemas import MAX_SEED

# keras.applications.imagenet_utils, mode "caffe": the ImageNet mean pixel in BGR order, as published
# with the original Caffe ResNet models (Kaiming He's deep-residual-networks repository).
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

Layers = list[keras.layers.Layer]


@dataclass(frozen=True)
class Architecture:
    """One entry of the zoo: what it is, which options it takes and whether ImageNet weights exist."""

    name: str
    description: str
    family: str
    build: Callable[..., Layers] = field(repr=False, compare=False)
    options: tuple[str, ...] = ()
    pretrained: bool = True


def _mobilenet_v2(weights: str | None, alpha: float = 1.0) -> Layers:
    # MobileNetV2 expects [-1, 1] ("tf" mode of preprocess_input).
    scale = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_v2" + PREPROCESSING_SUFFIX)
    backbone = keras.applications.MobileNetV2(
        input_shape=INPUT_SHAPE, alpha=alpha, include_top=False, pooling="avg", weights=weights
    )
    return [scale, backbone]


def _mobilenet_v3(application: Callable[..., keras.Model]) -> Callable[..., Layers]:
    def build(weights: str | None, alpha: float = 1.0) -> Layers:
        # include_preprocessing puts MobileNetV3's own Rescaling inside the backbone.
        return [
            application(
                input_shape=INPUT_SHAPE,
                alpha=alpha,
                include_top=False,
                pooling="avg",
                weights=weights,
                include_preprocessing=True,
            )
        ]

    return build


def _efficientnet_b0(weights: str | None) -> Layers:
    # EfficientNet rescales and normalises 0-255 input inside the backbone.
    return [
        keras.applications.EfficientNetB0(
            input_shape=INPUT_SHAPE, include_top=False, pooling="avg", weights=weights
        )
    ]


def _resnet50(weights: str | None) -> Layers:
    return [
        caffe_preprocessing(),
        keras.applications.ResNet50(
            input_shape=INPUT_SHAPE, include_top=False, pooling="avg", weights=weights
        ),
    ]


def _small_cnn(weights: str | None, filters: int = 8) -> Layers:
    if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
        raise Invalid(f"filters must be a positive whole number, got {filters!r}")
    conv = keras.layers.Conv2D
    # Pooling between convolutions and a global max at the end let so small a network find shapes
    # whatever their colour and place; strided convolutions with a global average alone did not
    # learn the demo's shapes (chance accuracy in our trials).
    return [
        keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="small_cnn" + PREPROCESSING_SUFFIX),
        conv(filters, 5, strides=2, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        conv(filters * 2, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(name="pool2"),
        conv(filters * 4, 3, padding="same", activation="relu", name="conv3"),
        keras.layers.MaxPooling2D(name="pool3"),
        conv(filters * 4, 3, padding="same", activation="relu", name="conv4"),
        keras.layers.GlobalMaxPooling2D(name="pool"),
    ]


def caffe_preprocessing() -> keras.layers.Conv2D:
    """A frozen 1x1 convolution turning 0-255 RGB into ResNet's caffe input: BGR minus the ImageNet mean."""
    layer = keras.layers.Conv2D(3, 1, name="caffe" + PREPROCESSING_SUFFIX, trainable=False)
    layer.build((None, *INPUT_SHAPE))
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for rgb in range(3):
        kernel[0, 0, rgb, 2 - rgb] = 1.0
    layer.set_weights([kernel, -np.asarray(IMAGENET_MEAN_BGR, dtype="float32")])
    return layer


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "mobilenet_v2",
            "MobileNetV2 (2018), small and fast; alpha scales its width.",
            "mobilenet",
            options=("alpha",),
            build=_mobilenet_v2,
        ),
        Architecture(
            "mobilenet_v3_small",
            "MobileNetV3-Small (2019), the smallest of the zoo, for phones and CPUs.",
            "mobilenet",
            options=("alpha",),
            build=_mobilenet_v3(keras.applications.MobileNetV3Small),
        ),
        Architecture(
            "mobilenet_v3_large",
            "MobileNetV3-Large (2019), more accurate than the small one at a few times the cost.",
            "mobilenet",
            options=("alpha",),
            build=_mobilenet_v3(keras.applications.MobileNetV3Large),
        ),
        Architecture(
            "efficientnet_b0",
            "EfficientNet-B0 (2019), a strong accuracy for its size.",
            "efficientnet",
            build=_efficientnet_b0,
        ),
        Architecture(
            "resnet50",
            "ResNet-50 (2015), the classic large baseline.",
            "resnet",
            build=_resnet50,
        ),
        Architecture(
            "small_cnn",
            "A few strided convolutions, trained from scratch; for tests and tiny datasets.",
            "cnn",
            options=("filters",),
            pretrained=False,
            build=_small_cnn,
        ),
    )
}


def build_model(
    architecture: str,
    *,
    labels: list[str] | None,
    weights: str | None = "imagenet",
    seed: int | None = None,
    **options: Any,
) -> keras.Sequential:
    """Build a zoo model: input, preprocessing, backbone and, when labels are given, a softmax head.

    With a `seed`, every weight that does not come from ImageNet starts the same on every build.
    """
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        raise Invalid(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    unknown = sorted(set(options) - set(arch.options))
    if unknown:
        allowed = ", ".join(arch.options) or "none"
        raise Invalid(f"{architecture} does not take option(s) {', '.join(unknown)} (allowed: {allowed})")
    _check_labels(labels)
    if weights not in (None, "imagenet"):
        raise Invalid(f"weights must be 'imagenet' or None, got {weights!r}")
    if weights == "imagenet" and not arch.pretrained:
        raise Invalid(f"{architecture} has no pretrained weights; pass weights=None")
    if seed is not None:
        _check_seed(seed)
        # The zoo's builders take no seeds of their own, so their initializers draw from Keras'
        # global generator (whichever the backend); resetting it makes the draws repeat.
        keras.utils.set_random_seed(seed)
    try:
        layers = arch.build(weights, **options)
    except ValueError as error:
        # keras.applications says ValueError for bad options, such as an alpha with no ImageNet weights.
        raise Invalid(f"{architecture}: {short_reason(error)}") from error
    except Exception as error:
        if weights != "imagenet":
            raise
        raise WeightsUnavailable(
            f"the ImageNet weights for {architecture} could not be loaded (no network, and none in Keras' "
            f"cache); pass weights=None to start from random weights",
            detail=short_reason(error),
        ) from error
    if labels:
        layers.append(keras.layers.Dense(len(labels), activation="softmax", name=HEAD_NAME))
    return keras.Sequential([keras.Input(INPUT_SHAPE), *layers], name=architecture)


def _check_seed(seed: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise Invalid(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")


def _check_labels(labels: list[str] | None) -> None:
    if labels is None:
        return
    if not labels:
        raise Invalid("labels must not be empty; pass labels=None for a feature-vector model")
    if not all(isinstance(label, str) and label for label in labels):
        raise Invalid("every label must be a non-empty string")
    duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
    if duplicates:
        raise Invalid(f"labels must be unique; repeated: {', '.join(duplicates)}")
