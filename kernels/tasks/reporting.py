"""What a job tells the service while it runs, and how it hears that it should stop.

On a Dask worker, `WorkerReporter` sends events with `get_worker().log_event("headstart/<job key>",
...)`: the attempt's start (with the worker's address), each epoch as it ends, and progress (done
and total) for ingest, feature extraction and evaluation. Cancelling is a `distributed.Event`
named `<job key>/stop`, which the reporter reads at batch boundaries, at most every
`CHECK_SECONDS`. A reporter's `retry` says whether an earlier attempt of the job started (Dask
runs a task again when its worker dies; the earlier "started" is on the topic), so that a first
attempt's outputs skip removing what a killed one left. `LocalReporter` is the same contract for a
job run in this process (the command line's runner), which never runs a job twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from headstart.kernels.errors import Cancelled

# How often, at most, a worker asks the scheduler whether its job was cancelled, and sends progress.
CHECK_SECONDS = 0.25
PROGRESS_SECONDS = 0.5


def topic(key: str) -> str:
    """The Dask event topic a job's reports go to."""
    return f"headstart/{key}"


def stop_event_name(key: str) -> str:
    return f"{key}/stop"


class Reporter:
    """The contract task functions report through: epochs, progress, and whether to stop."""

    def __init__(self) -> None:
        self._progress_at = 0.0
        # Whether an earlier attempt of this job ran (Dask runs a task again when its worker dies):
        # its outputs may then find what the killed attempt left under their keys.
        self.retry = False

    def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop_requested(self) -> bool:
        raise NotImplementedError

    def started(self) -> None:
        self.send({"event": "started"})

    def epoch(self, figures: dict) -> None:
        self.send({"event": "epoch", "epoch": figures})

    def epochs(self, runs: list[tuple[int, dict]]) -> None:
        """A sweep's epoch of several runs at once, each with its run (the index of its config)."""
        self.send({"event": "epochs", "runs": [{"run": run, "epoch": figures} for run, figures in runs]})

    def progress(self, phase: str) -> Callable[[int, int], None]:
        """A `progress(done, total)` callback for one phase; sends at most every PROGRESS_SECONDS,
        and always the last step, and raises Cancelled when a stop was asked for."""

        def report(done: int, total: int) -> None:
            moment = time.monotonic()
            if done >= total or moment - self._progress_at >= PROGRESS_SECONDS:
                self._progress_at = moment
                self.send({"event": "progress", "phase": phase, "done": int(done), "total": int(total)})
            self.check()

        return report

    def check(self) -> None:
        if self.should_stop():
            raise Cancelled("the job was cancelled")

    def should_stop(self) -> bool:
        return self.stop_requested()


class WorkerReporter(Reporter):
    """Reports of a job running as a Dask task on a worker."""

    def __init__(self, key: str) -> None:
        super().__init__()
        from distributed import Event, get_worker

        self.key = key
        self.worker = get_worker()
        self._stop = Event(stop_event_name(key), client=self.worker.client)
        self._checked_at = 0.0
        self._stopped = False

    def started(self) -> None:
        # A job's attempts report to one topic, so an earlier "started" there makes this a retry; a
        # scheduler that cannot say is taken to mean one.
        try:
            earlier = self.worker.client.get_events(topic(self.key))
            self.retry = any(message.get("event") == "started" for _, message in earlier)
        except Exception:
            self.retry = True
        super().started()

    def send(self, message: dict[str, Any]) -> None:
        self.worker.log_event(topic(self.key), {**message, "worker": self.worker.address})

    def stop_requested(self) -> bool:
        # Asking the scheduler costs a round trip, so a batch loop asks at most every CHECK_SECONDS.
        moment = time.monotonic()
        if not self._stopped and moment - self._checked_at >= CHECK_SECONDS:
            self._checked_at = moment
            self._stopped = bool(self._stop.is_set())
        return self._stopped


class LocalReporter(Reporter):
    """Reports of a job run in this process: handed to callbacks, stopped by a threading.Event."""

    def __init__(
        self, on_message: Callable[[dict[str, Any]], None] | None = None, stop: threading.Event | None = None
    ) -> None:
        super().__init__()
        self.on_message = on_message
        self.stop = stop or threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def stop_requested(self) -> bool:
        return self.stop.is_set()


def reporter_for(key: str | None) -> Reporter:
    """The reporter of the running task: a worker's when on a Dask worker, else a silent local one."""
    if key is not None:
        try:
            from distributed import get_worker

            get_worker()
        except ValueError:
            pass
        else:
            return WorkerReporter(key)
    return LocalReporter()


def run_task(
    key: str, task: Callable[[Any, Reporter], Any], given: Any, reporter: Reporter | None = None
) -> Any:
    """Run one task as the job `key`: its start reported, then `task(given, reporter)`.

    On a Dask worker the reporter is the worker's; a runner in this process hands its own.
    """
    reporter = reporter or reporter_for(key)
    reporter.started()
    return task(given, reporter)
