"""headstart: create, store, share, re-train and benchmark Keras image classifiers from Jupyter.

What a notebook needs, by name: `HeadstartClient`, the widgets, `TrainingConfig` and the errors
(and `Catalog`, a local catalog for scripts). The names load on first use, so `import headstart`
stays quick and never imports Keras, ipywidgets or the database.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_ERRORS = (
    "HeadstartError",
    "Invalid",
    "NotFound",
    "Forbidden",
    "TooLarge",
    "Conflict",
    "Cancelled",
    "WeightsUnavailable",
)
_WIDGETS = (
    "ModelPicker",
    "DatasetPicker",
    "TrainingSetup",
    "TrainingDashboard",
    "Leaderboard",
    "Evaluate",
    "ModelCard",
    "studio",
)
_EXPORTS = {
    "HeadstartClient": "headstart.kernels.client",
    "TrainingConfig": "headstart.kernels.schemas",
    **dict.fromkeys(_WIDGETS, "headstart.widgets"),
    **dict.fromkeys(_ERRORS, "headstart.kernels.errors"),
    "Catalog": "headstart.extension.manager",
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
