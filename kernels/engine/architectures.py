"""The zoo's builders: each architecture (kernels/engine/zoo.py) as a Sequential taking raw 0-255 RGB
images with its family's preprocessing as built-in layers inside, so every model keeps the input
contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from headstart.kernels.engine import efficientnet_lite as lite
from headstart.kernels.engine.pretrained import WeightsSource
from headstart.kernels.engine.surgery import HEAD_NAME, INPUT_SHAPE, PREPROCESSING_SUFFIX, short_reason
from headstart.kernels.engine.zoo import ARCHITECTURES, Architecture, check_request
from headstart.kernels.errors import Invalid, WeightsUnavailable

__all__ = ["ARCHITECTURES", "BUILDERS", "build_model", "caffe_preprocessing"]

# keras.applications.imagenet_utils, mode "caffe": the ImageNet mean pixel in BGR order, as published
# with the original Caffe ResNet models (Kaiming He's deep-residual-networks repository).
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

Layers = list[keras.layers.Layer]


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


def _efficientnet_lite(name: str) -> Callable[..., Layers]:
    def build(weights: str | None, imagenet_head: bool = False) -> Layers:
        # Lite1 and Lite2 were trained at 240 and 260 pixels; at the contract's 224 they still rank
        # scikit-image's photos right (cat, espresso, tripod), so no upsampling layer is added.
        variant = lite.VARIANTS[name]
        body = lite.backbone(variant, INPUT_SHAPE)
        head = None
        if imagenet_head:
            head = keras.layers.Dense(lite.IMAGENET_CLASSES, activation="softmax", name=HEAD_NAME)
            head.build((None, lite.FEATURES))
        if weights is not None:
            lite.load_state_dict(Path(weights), body, head)
        return [lite.preprocessing(variant), body, *([head] if head is not None else [])]

    return build


def _small_cnn(weights: str | None, filters: int = 8) -> Layers:
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


# Each architecture's builder: (weights: None, "imagenet" or a file's path, **options) -> its layers.
BUILDERS: dict[str, Callable[..., Layers]] = {
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v3_small": _mobilenet_v3(keras.applications.MobileNetV3Small),
    "mobilenet_v3_large": _mobilenet_v3(keras.applications.MobileNetV3Large),
    "efficientnet_b0": _efficientnet_b0,
    **{f"efficientnet_lite{n}": _efficientnet_lite(f"efficientnet_lite{n}") for n in (0, 1, 2)},
    "resnet50": _resnet50,
    "small_cnn": _small_cnn,
}


def build_model(
    architecture: str,
    *,
    labels: list[str] | None,
    weights: str | WeightsSource | None = "imagenet",
    seed: int | None = None,
    imagenet_head: bool = False,
    weights_folder: str | Path | None = None,
    **options: Any,
) -> keras.Sequential:
    """Build a zoo model: input, preprocessing, backbone and, when labels are given, a softmax head.

    `weights="imagenet"` takes the ImageNet weights from where `Architecture.weights_source` finds
    them (`weights_folder` first, Keras' cache by default); a `WeightsSource` found already is used
    as it is. `imagenet_head` keeps the pretrained 1000-class classifier, whose labels are
    `pretrained.imagenet_labels()`. With a `seed`, every weight that does not come from ImageNet
    starts the same on every build.
    """
    arch = check_request(
        architecture, labels=labels, weights=weights, seed=seed, imagenet_head=imagenet_head, options=options
    )
    if weights == "imagenet":
        source: WeightsSource | None = arch.weights_source(weights_folder, **options)
    else:
        source = weights if isinstance(weights, WeightsSource) else None
    if seed is not None:
        # The zoo's builders take no seeds of their own, so their initializers draw from Keras'
        # global generator (whichever the backend); resetting it makes the draws repeat.
        keras.utils.set_random_seed(seed)
    layers = _build_layers(arch, source, imagenet_head, options)
    if labels:
        layers.append(keras.layers.Dense(len(labels), activation="softmax", name=HEAD_NAME))
    return keras.Sequential([keras.Input(INPUT_SHAPE), *layers], name=architecture)


def _build_layers(
    arch: Architecture, source: WeightsSource | None, imagenet_head: bool, options: dict[str, Any]
) -> Layers:
    # A builder takes None (random), "imagenet" (Keras downloads) or the path of a weights file.
    weights = None if source is None else "imagenet" if source.path is None else str(source.path)
    extra = {"imagenet_head": True} if imagenet_head else {}
    try:
        return BUILDERS[arch.name](weights, **options, **extra)
    except Invalid:
        raise
    except Exception as error:
        if source is not None and source.path is not None:
            # Wrong shapes, a truncated file or no HDF5 at all: the operator must know which file.
            raise Invalid(f"{source.path} does not fit {arch.name}: {short_reason(error)}") from error
        if isinstance(error, ValueError):
            # keras.applications says ValueError for bad options, such as an alpha with no ImageNet weights.
            raise Invalid(f"{arch.name}: {short_reason(error)}") from error
        if source is None:
            raise
        file_name = arch.weights_file(**options) if arch.weights_file else "its weights file"
        raise WeightsUnavailable(
            f"the ImageNet weights for {arch.name} could not be loaded: {file_name} is not in the "
            f"weights folder and Keras could not download it; put it there, or pass weights=None",
            detail=short_reason(error),
        ) from error
