"""Operator-set size limits, as plain values the engine checks (the service exposes them as config)."""

from __future__ import annotations

from dataclasses import dataclass


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
