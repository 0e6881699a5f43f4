"""`InProcessRunner`: jobs as threads of this process, for the command line and scripts.

The same contract as the service's Dask runner (extension/jobs/runner.py): a task runs with a
`LocalReporter`, its reports and its end reach the sinks on one thread in order, and a cancel stops it
at its next batch. Nothing outlives the process, so there is nothing to attach to after a restart.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from traitlets import Int

from headstart.extension.jobs.runner import DoneSink, EventSink, JobRunner, Resources, Task
from headstart.kernels.errors import Cancelled
from headstart.kernels.tasks.reporting import LocalReporter, run_task


class InProcessRunner(JobRunner):
    """Runs each job on a thread of this process, `workers` at a time."""

    workers = Int(
        1,
        min=1,
        config=True,
        help="Jobs run at once in this process; more wait their turn, queued. One suits the command "
        "line: a job uses every core through TensorFlow already.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="headstart-job")
        # Events and ends of every job are handled on this one thread, in the order they came.
        self._ordered = ThreadPoolExecutor(1, thread_name_prefix="headstart-jobs")
        self._jobs: dict[str, tuple[Future[None], threading.Event, DoneSink]] = {}
        self._lock = threading.Lock()
        self._closed = False

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
        # A job asking for a GPU runs here all the same: TensorFlow uses this machine's if it has one.
        # Every job runs in this one process, so whatever an affinity names is here already.
        stop = threading.Event()

        def report(message: dict[str, Any]) -> None:
            self._ordered.submit(self._handle, on_event, message)

        reporter = LocalReporter(report, stop)
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            future = self._pool.submit(self._run, key, task, given, reporter, on_done)
            self._jobs[key] = (future, stop, on_done)

    def _run(self, key: str, task: Task, given: Any, reporter: LocalReporter, on_done: DoneSink) -> None:
        try:
            if reporter.stop_requested():
                raise Cancelled("cancelled before it started")
            result = run_task(key, task, given, reporter)
        except Cancelled as error:
            self._end(key, on_done, "cancelled", str(error))
        except BaseException as error:
            self._end(key, on_done, "failed", error)
        else:
            self._end(key, on_done, "succeeded", result)

    def _end(self, key: str, on_done: DoneSink, state: str, value: Any) -> None:
        with self._lock:
            self._jobs.pop(key, None)
        self._ordered.submit(self._handle, on_done, state, value)

    def _handle(self, function: Any, *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            self.log.exception("headstart jobs: handling a job's report failed")

    def attach(
        self, key: str, *, on_event: EventSink, on_done: DoneSink, resources: Resources | None = None
    ) -> bool:
        return False  # its jobs ended with the process that ran them

    def cancel(self, key: str) -> None:
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return
        future, stop, on_done = job
        stop.set()
        if future.cancel():  # not started yet: it never will
            self._end(key, on_done, "cancelled", "cancelled before it started")

    def require(self, resources: Resources | None) -> str | None:
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for _, stop, _ in jobs:
            stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ordered.shutdown(wait=True)
