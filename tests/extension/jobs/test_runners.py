"""The runner contract (extension/jobs/runner.py), held to both runners: the command line's threads
and the service's Dask cluster (the session's LocalCluster of worker processes).

The same tasks go to each: reports arrive in order on one thread and before the end, a result or an
error comes back as it was, and a cancel stops a queued job before it starts and a running one at its
next check. Tasks are module functions, so a Dask worker imports them as it would the catalog's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from headstart.extension.jobs.dask_runner import DaskRunner
from headstart.extension.jobs.inprocess import InProcessRunner
from headstart.extension.jobs.runner import JobRunner
from headstart.kernels.errors import Invalid
from headstart.kernels.tasks.reporting import Reporter


def counting(given: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Reports `steps` progress steps, checking for a stop at each; returns what it was given."""
    progress = reporter.progress("counting")
    for step in range(given["steps"]):
        time.sleep(given.get("pause", 0.0))
        progress(step + 1, given["steps"])
    return {"echo": given["word"], "steps": given["steps"]}


def attempt(given: dict[str, Any], reporter: Reporter) -> dict[str, bool]:
    """Says whether its reporter takes it for a retry of its job."""
    return {"retry": reporter.retry}


def refusing(given: dict[str, Any], reporter: Reporter) -> None:
    raise Invalid(f"refused: {given['word']}")


class Recorded:
    """What a runner handed the sinks of one job, and on which threads."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.end: tuple[str, Any] | None = None
        self.ended = threading.Event()

    def on_event(self, message: dict[str, Any]) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(message)

    def on_done(self, state: str, value: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.end = (state, value)
        self.ended.set()

    def wait(self, seconds: float = 120) -> tuple[str, Any]:
        assert self.ended.wait(seconds), "the job did not end"
        assert self.end is not None
        return self.end


@pytest.fixture(params=["inprocess", "dask"])
def runner(request: pytest.FixtureRequest) -> Iterator[JobRunner]:
    if request.param == "inprocess":
        made: JobRunner = InProcessRunner()
    else:
        scheduler = request.getfixturevalue("dask_scheduler")
        made = DaskRunner(cluster="address", address=scheduler)
    yield made
    made.close()


def submit(runner: JobRunner, key: str, task: Any, given: Any) -> Recorded:
    recorded = Recorded()
    runner.submit(key, task, given, on_event=recorded.on_event, on_done=recorded.on_done)
    return recorded


def test_reports_come_in_order_before_the_result(runner: JobRunner) -> None:
    recorded = submit(runner, f"contract-ok-{time.monotonic_ns()}", counting, {"steps": 3, "word": "hi"})
    state, value = recorded.wait()
    assert (state, value) == ("succeeded", {"echo": "hi", "steps": 3})
    assert recorded.events[0]["event"] == "started"
    progress = [(m["done"], m["total"]) for m in recorded.events if m["event"] == "progress"]
    assert progress[-1] == (3, 3) and progress == sorted(progress)
    # Reports and the end are handled on one thread, the runner's own, never the caller's.
    assert len(recorded.threads) == 1 and threading.current_thread().name not in recorded.threads


def test_a_first_attempt_is_not_a_retry(runner: JobRunner) -> None:
    """A job's first run has nothing of a killed attempt to remove, so its outputs skip that request
    (tests/extension/jobs/test_share_nothing.py checks that a retry does remove it)."""
    recorded = submit(runner, f"contract-retry-{time.monotonic_ns()}", attempt, {})
    assert recorded.wait() == ("succeeded", {"retry": False})


def test_a_failing_task_ends_failed_with_its_error(runner: JobRunner) -> None:
    recorded = submit(runner, f"contract-fail-{time.monotonic_ns()}", refusing, {"word": "no"})
    state, value = recorded.wait()
    assert state == "failed" and isinstance(value, Invalid) and str(value) == "refused: no"


def test_a_running_job_stops_at_its_next_check(runner: JobRunner) -> None:
    key = f"contract-cancel-{time.monotonic_ns()}"
    recorded = submit(runner, key, counting, {"steps": 600, "pause": 0.05, "word": "long"})
    deadline = time.monotonic() + 120
    while not any(m["event"] == "progress" for m in recorded.events):
        assert time.monotonic() < deadline, "the job never reported progress"
        time.sleep(0.05)
    runner.cancel(key)
    state, reason = recorded.wait()
    assert state == "cancelled" and "cancelled" in str(reason)
    done = max(m["done"] for m in recorded.events if m["event"] == "progress")
    assert done < 600


def test_a_queued_job_is_cancelled_before_it_starts() -> None:
    """One job at a time in this process: the second waits, and a cancel takes it off the queue."""
    runner = InProcessRunner(workers=1)
    try:
        first = submit(runner, "contract-first", counting, {"steps": 40, "pause": 0.05, "word": "a"})
        second = submit(runner, "contract-second", counting, {"steps": 1, "word": "b"})
        runner.cancel("contract-second")
        assert second.wait() == ("cancelled", "cancelled before it started")
        assert second.events == []  # it never started
        assert first.wait()[0] == "succeeded"
    finally:
        runner.close()


def test_after_a_restart_only_the_dask_runner_finds_its_jobs(runner: JobRunner) -> None:
    key = f"contract-attach-{time.monotonic_ns()}"
    recorded = Recorded()
    found = runner.attach(key, on_event=recorded.on_event, on_done=recorded.on_done)
    assert found is False  # nothing runs under that key, on either runner


def test_resources_no_worker_offers_are_refused_at_once_on_the_local_cluster(dask_scheduler: str) -> None:
    in_process = InProcessRunner()
    on_cluster = DaskRunner(cluster="address", address=dask_scheduler)
    try:
        # This process runs any job (TensorFlow takes the machine's GPU if it has one).
        assert in_process.require({"GPU": 1}) is None
        with pytest.raises(Invalid, match="offers GPU=1"):
            on_cluster.require({"GPU": 1})
        assert on_cluster.require(None) is None
    finally:
        in_process.close()
        on_cluster.close()
