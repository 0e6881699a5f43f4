"""`HeadstartClient`: a remote catalog with the same calls as the local one, over the REST API."""

from __future__ import annotations

import os
from types import TracebackType

import httpx

from headstart.kernels.client.benchmark import RemoteBenchmark
from headstart.kernels.client.connection import LIST_PAGE, Connection
from headstart.kernels.client.datasets import RemoteDatasets
from headstart.kernels.client.evaluations import RemoteEvaluations
from headstart.kernels.client.jobs import RemoteJobs
from headstart.kernels.client.models import RemoteModels
from headstart.kernels.client.sweeps import RemoteSweeps
from headstart.kernels.client.trainings import RemoteTrainings
from headstart.kernels.errors import HeadstartError, Invalid


class HeadstartClient:
    """The catalog service, reached over HTTP with your hub token.

    Its `models`, `datasets`, `trainings`, `sweeps`, `evaluations` and `benchmark` take the same
    calls as the local catalog's managers, without their first (user) argument: the service knows
    you by your token.
    `timeout` (seconds) bounds each request but the slow ones' wait for an answer; `page_size`
    is how many items each request of a full listing (`models.list()`) asks for, 500 at most.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        page_size: int = LIST_PAGE,
    ) -> None:
        # The hub's spawner sets both variables in every kernel, so a notebook passes neither.
        url = url or os.environ.get("HEADSTART_URL")
        if not url:
            raise Invalid("no catalog URL: set HEADSTART_URL or pass url= to HeadstartClient")
        if token is None:
            token = os.environ.get("JUPYTERHUB_API_TOKEN")
        self._connection = Connection(url, token, transport=transport, timeout=timeout, page_size=page_size)
        self.jobs = RemoteJobs(self._connection)
        self.models = RemoteModels(self._connection, self.jobs)
        self.datasets = RemoteDatasets(self._connection, self.jobs)
        self.trainings = RemoteTrainings(self._connection)
        self.sweeps = RemoteSweeps(self._connection, self.jobs)
        self.evaluations = RemoteEvaluations(self._connection, self.jobs)
        self.benchmark = RemoteBenchmark(self._connection)

    @property
    def url(self) -> str:
        """The catalog's base URL, ending in a slash."""
        return self._connection.url

    def me(self) -> str:
        """The user name the catalog knows you by."""
        response = self._connection.request("GET", "headstart/me")
        try:
            return str(response.json()["name"])
        except (ValueError, TypeError, KeyError):
            raise HeadstartError(f"GET {response.request.url} answered no user name") from None

    def close(self) -> None:
        """Close the client's connections."""
        self._connection.close()

    def __enter__(self) -> HeadstartClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the token: reprs end up in notebooks and logs.
        return f"HeadstartClient({self.url!r})"
