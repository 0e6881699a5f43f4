"""Operator-set size limits, as plain values the engine checks (the service exposes them as config)."""

from __future__ import annotations

from dataclasses import dataclass

from headstart.kernels.errors import TooLarge


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on a dataset upload; each guards against a class of archive or image bomb."""

    max_archive_bytes: int = 2 * 1024**3
    max_files: int = 200_000
    max_image_pixels: int = 64_000_000
    max_compression_ratio: float = 200.0
    max_image_bytes: int = 64 * 1024**2


@dataclass(frozen=True)
class ModelLimits:
    """Bounds on a stored model, checked on upload and on every model the platform creates."""

    max_model_bytes: int = 512 * 1024**2
    max_model_params: int = 100_000_000


def check_model_limits(params: int, size_bytes: int, limits: ModelLimits) -> None:
    """Raise TooLarge, naming the limit and the size, when a model exceeds the operator's limits."""
    if size_bytes > limits.max_model_bytes:
        raise TooLarge(
            f"the model is {size_bytes:,} bytes, over the limit of {limits.max_model_bytes:,} bytes",
            detail={"limit": limits.max_model_bytes, "size": size_bytes},
        )
    if params > limits.max_model_params:
        raise TooLarge(
            f"the model has {params:,} parameters, over the limit of {limits.max_model_params:,}",
            detail={"limit": limits.max_model_params, "size": params},
        )
