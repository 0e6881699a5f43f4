"""headstart: create, store, share, re-train and benchmark Keras image classifiers from Jupyter.

The names below load on first use, so `import headstart` stays quick and never imports Keras.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Catalog": "headstart.extension.manager",
    "TrainingConfig": "headstart.kernels.schemas",
    "HeadstartError": "headstart.kernels.errors",
    "Invalid": "headstart.kernels.errors",
    "NotFound": "headstart.kernels.errors",
    "Forbidden": "headstart.kernels.errors",
    "TooLarge": "headstart.kernels.errors",
    "Conflict": "headstart.kernels.errors",
    "WeightsUnavailable": "headstart.kernels.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'headstart' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
