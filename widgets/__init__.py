"""headstart's notebook widgets: pick, train, watch, decide, evaluate and compare, over HTTP.

Every widget talks to the catalog service through `headstart.kernels.client.HeadstartClient`
(DESIGN.md: widgets never import the extension). In a hub kernel the client needs no arguments:
the spawner sets HEADSTART_URL and JUPYTERHUB_API_TOKEN.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported from its module on first use, so `import headstart.widgets` stays cheap.
_WHERE = {
    "AddDataset": "adding",
    "NewModel": "adding",
    "ModelPicker": "pickers",
    "DatasetPicker": "pickers",
    "TrainingSetup": "training",
    "TrainingDashboard": "training",
    "SweepSetup": "sweep",
    "SweepBoard": "sweep",
    "Leaderboard": "leaderboard",
    "BenchmarkBoard": "benchmark",
    "Evaluate": "evaluate",
    "ModelCard": "card",
    # Not a module named `studio`: importing it would set the package's `studio` to the module.
    "studio": "tabs",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'headstart.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"headstart.widgets.{module}"), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value
