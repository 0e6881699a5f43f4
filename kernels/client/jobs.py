"""`HeadstartClient.jobs`: the remote twin of the catalog's JobManager (your jobs, read only)."""

from __future__ import annotations

import builtins

from headstart.kernels.client.connection import Connection, parse, parse_list, query
from headstart.kernels.schemas import JobPublic


class RemoteJobs:
    """Your jobs on the service: ingests, validations, trainings and evaluations."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def list(self, *, unfinished: bool = False) -> builtins.list[JobPublic]:
        """Your jobs, oldest first; only queued and running ones with `unfinished`."""
        params = query(unfinished="true" if unfinished else None)
        return parse_list(self._connection.request("GET", "headstart/jobs", params=params), JobPublic)

    def get(self, job_id: int) -> JobPublic:
        """One of your jobs, with its state and progress."""
        return parse(self._connection.request("GET", f"headstart/jobs/{int(job_id)}"), JobPublic)
