"""The catalog's REST handlers, one module per resource, gathered into one route list."""

from __future__ import annotations

from headstart.extension.handlers import (
    benchmark,
    datasets,
    evaluations,
    jobs,
    leaderboards,
    models,
    spec,
    sweeps,
    trainings,
)
from headstart.extension.handlers.base import NotFoundHandler

# Routes are tried in order; the catch-all comes last, so that only unknown paths under the
# catalog's own namespace reach it. Every route lives under `headstart/`, as jupyter-scheduler's
# live under `scheduler/`: the server's `api/` (its `api/me` included) and JupyterLab's routes
# stay theirs when the extension loads into a plain `jupyter lab`.
default_handlers = [
    *spec.default_handlers,
    *models.default_handlers,
    *datasets.default_handlers,
    *trainings.default_handlers,
    *sweeps.default_handlers,
    *jobs.default_handlers,
    *evaluations.default_handlers,
    *leaderboards.default_handlers,
    *benchmark.default_handlers,
    (
        r"/headstart(?:/.*)?",
        NotFoundHandler,
    ),
]

__all__ = ["default_handlers"]
