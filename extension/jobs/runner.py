"""`JobRunner`: the one interface that jobs run through, whichever runner carries them out.

A manager hands a runner a task (`headstart.kernels.tasks`), its typed input and the job's key, and
two sinks: `on_event` gets what the task reports (its start, progress, epochs) and `on_done` its
end, `(state, result or reason)`, on one thread and in order. `attach` follows a job submitted
before a restart, `cancel` asks one to stop. No manager asks which runner it has.

Two implement it, chosen by `c.Catalog.runner_class`: `InProcessRunner` (headstart.extension.jobs
.inprocess), threads of the calling process, for the command line and scripts; and `DaskRunner`
(headstart.extension.jobs.dask_runner), the service's Dask cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from traitlets.config import LoggingConfigurable

EventSink = Callable[[dict[str, Any]], None]
DoneSink = Callable[[str, Any], None]  # (state, result or reason)
Resources = Mapping[str, float]
Task = Callable[[Any, Any], Any]  # task(given, reporter) -> result


def resource_words(resources: Resources) -> str:
    """Resources as `dask worker --resources` takes them, e.g. "GPU=1"."""
    return " ".join(f"{name}={amount:g}" for name, amount in sorted(resources.items()))


def waiting_report(phase: str) -> dict[str, Any]:
    """The report that puts a job waiting for a worker in its phase, as a worker's progress would."""
    return {"event": "progress", "phase": phase, "done": 0, "total": 0}


class JobRunner(LoggingConfigurable):
    """Runs jobs and reports their events and ends; see the module docstring for the contract."""

    def submit(
        self,
        key: str,
        task: Task,
        given: Any,
        *,
        on_event: EventSink,
        on_done: DoneSink,
        resources: Resources | None = None,
        affinity: str | None = None,
    ) -> None:
        """Run `task(given, reporter)` as the job `key`; returns at once.

        A job asking for `resources` that this runner can never offer is refused (Invalid) before
        anything runs; one that may wait for them is submitted, waiting (its phase says for what).
        `affinity` names what the task keeps in its process for the next one (a loaded model's
        content): a runner of several processes prefers the one that last ran a job of the same
        affinity, while it still has it.
        """
        raise NotImplementedError

    def attach(
        self, key: str, *, on_event: EventSink, on_done: DoneSink, resources: Resources | None = None
    ) -> bool:
        """Follow a job submitted before a restart; False when nothing runs it any more."""
        raise NotImplementedError

    def cancel(self, key: str) -> None:
        """Ask a job to stop: a queued one is taken off the queue, a running one stops at its next batch."""
        raise NotImplementedError

    def require(self, resources: Resources | None) -> str | None:
        """Check that a job asking for `resources` can run: None when it can now, the phase to show
        while a worker that offers them is added, or Invalid with the reason when none ever will."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Stop following jobs; what a job of a runner that outlives the service does is its own."""
        raise NotImplementedError
