"""`HeadstartClient.datasets`: the remote twin of the catalog's DatasetManager."""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from headstart.kernels.client.connection import (
    Connection,
    file_chunks,
    parse,
    query,
    upload_headers,
)
from headstart.kernels.client.jobs import RemoteJobs, answered_job
from headstart.kernels.engine.archive import zip_folder
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import DatasetPublic, JobPublic


def dataset_path(ref: int | str) -> str:
    """The API path of a dataset by id or name; a name may hold any character, so it is quoted."""
    return f"headstart/datasets/{quote(str(ref), safe='')}"


class RemoteDatasets:
    """Adds, lists and shows the datasets of a remote catalog."""

    def __init__(self, connection: Connection, jobs: RemoteJobs) -> None:
        self._connection = connection
        self._jobs = jobs

    def add(
        self,
        source: Path,
        *,
        name: str,
        description: str = "",
        skip_invalid: bool = False,
        resize_policy: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_ingest: Callable[[int, int], None] | None = None,
    ) -> DatasetPublic:
        """Send a zip file, or a folder zipped on the way, for the catalog to ingest, and wait for it.

        `progress(bytes sent, total bytes)` follows the upload; `on_ingest(images done, total)` the
        ingest, which the service runs as a job.
        """
        source = Path(source)
        if not source.exists():
            raise Invalid(f"no such file or folder: {source}")
        if source.is_file():
            job = self._send(source, name, description, skip_invalid, resize_policy, progress)
        else:
            # The zip goes to disk, not memory: a dataset can be gigabytes.
            with tempfile.TemporaryDirectory(prefix="headstart-upload-") as scratch:
                archive = Path(scratch) / f"{source.name or 'dataset'}.zip"
                zip_folder(source, archive)
                job = self._send(archive, name, description, skip_invalid, resize_policy, progress)
        watch = None if on_ingest is None else (lambda _phase, done, total: on_ingest(done, total))
        ended = self._jobs.follow(job, progress=watch)
        return self.get((ended.result or {})["dataset_id"])

    def _send(
        self,
        archive: Path,
        name: str,
        description: str,
        skip_invalid: bool,
        resize_policy: str | None,
        progress: Callable[[int, int], None] | None,
    ) -> JobPublic:
        params = query(
            name=name, description=description, skip_invalid=skip_invalid, resize_policy=resize_policy
        )
        response = self._connection.request(
            "POST",
            "headstart/datasets",
            params=params,
            content=file_chunks(archive, progress),
            headers=upload_headers(archive, "application/zip"),
            slow=True,
        )
        return answered_job(response)

    def list(self) -> builtins.list[DatasetPublic]:
        """Every dataset, oldest first."""
        return self._connection.every("headstart/datasets", DatasetPublic, {})

    def get(self, ref: int | str) -> DatasetPublic:
        """A dataset by id or by name."""
        return parse(self._connection.request("GET", dataset_path(ref)), DatasetPublic)

    def delete(self, ref: int | str) -> None:
        """Always refused with Conflict: datasets are permanent, so results stay comparable. The
        service says so; this asks it rather than assuming, so a missing dataset is NotFound."""
        self._connection.request("DELETE", dataset_path(ref))
