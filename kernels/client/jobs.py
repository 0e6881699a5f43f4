"""`HeadstartClient.jobs`: your jobs on the service, and the one way the client follows one to its end.

Every heavy request (an ingest, a create, an upload's validation, an evaluation, a training) answers
202 with its job at once; `follow` polls the job until it ends, handing its progress on, and raises
a failed job's error as the class the service named.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable

import httpx

from headstart.kernels.client.connection import Connection, parse, parse_list, query
from headstart.kernels.errors import Cancelled, HeadstartError, error_class
from headstart.kernels.schemas import UNFINISHED, JobPublic

# Polls start quick, for the short jobs (a create), and slow down to `poll` for the long ones.
FIRST_POLL_SECONDS = 0.05

# (phase, done, total) as the job reports them.
JobProgress = Callable[[str | None, int, int], None]


class RemoteJobs:
    """Your jobs on the service: ingests, model builds, validations, trainings and evaluations."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def list(self, *, unfinished: bool = False) -> builtins.list[JobPublic]:
        """Your jobs, oldest first; only queued and running ones with `unfinished`."""
        params = query(unfinished="true" if unfinished else None)
        return parse_list(self._connection.request("GET", "headstart/jobs", params=params), JobPublic)

    def get(self, job_id: int) -> JobPublic:
        """One of your jobs, with its state and progress."""
        return parse(self._connection.request("GET", f"headstart/jobs/{int(job_id)}"), JobPublic)

    def follow(
        self,
        job: JobPublic,
        *,
        progress: JobProgress | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> JobPublic:
        """Wait for a job to end and return it; a failed job raises its error, a cancelled one Cancelled.

        `progress(phase, done, total)` gets each change of the job's progress. `timeout` (seconds)
        stops the waiting, not the job.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause, seen = FIRST_POLL_SECONDS, None
        while True:
            now = (job.phase, job.done, job.total)
            if progress is not None and now != seen and (job.phase or job.total):
                progress(*now)
            seen = now
            if job.state not in UNFINISHED:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise HeadstartError(
                    f"job {job.id} is still {job.state} after {timeout:g} s; it goes on in the catalog, "
                    f"so follow it with jobs.get({job.id})",
                    detail=job,
                )
            time.sleep(pause)
            pause = min(pause * 2, poll)
            job = self.get(job.id)
        if job.state == "failed":
            error = job.error or {}
            raise error_class(error.get("error"))(
                job.reason or f"job {job.id} failed", detail=error.get("items")
            )
        if job.state == "cancelled":
            raise Cancelled(job.reason or f"job {job.id} was cancelled", detail=job)
        return job


def answered_job(response: httpx.Response) -> JobPublic:
    """The job a 202 answer holds."""
    return parse(response, JobPublic)
