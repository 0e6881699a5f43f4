"""`HeadstartClient.datasets`: the remote twin of the catalog's DatasetManager."""

from __future__ import annotations

import builtins
import tempfile
import zipfile
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
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import DatasetPublic


def dataset_path(ref: int | str) -> str:
    """The API path of a dataset by id or name; a name may hold any character, so it is quoted."""
    return f"headstart/datasets/{quote(str(ref), safe='')}"


def zip_folder(folder: Path, dest: Path) -> None:
    """Write a folder's files into a zip at `dest`, named by their paths relative to the folder
    (`label/image` or `split/label/image`), file by file from disk to disk."""
    # The local ingest's own walk: sorted, hidden files and OS litter skipped, links not followed.
    from headstart.kernels.engine.archive import _walk

    # Stored, not deflated: images are compressed already, and deflating them costs CPU for nothing.
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED, allowZip64=True, strict_timestamps=False) as archive:
        for relative, entry in _walk(folder):
            if entry.is_symlink():
                raise Invalid(f"{relative!r} is a symbolic link; links are not allowed")
            if not entry.is_file(follow_symlinks=False):
                raise Invalid(f"{relative!r} is not a regular file")
            archive.write(entry.path, relative)


class RemoteDatasets:
    """Adds, lists and shows the datasets of a remote catalog."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self,
        source: Path,
        *,
        name: str,
        description: str = "",
        skip_invalid: bool = False,
        resize_policy: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DatasetPublic:
        """Send a zip file, or a folder zipped on the way, for the catalog to ingest.

        `progress(bytes sent, total bytes)` follows the upload; the ingest that follows is the
        service's, and the answer comes when it is done.
        """
        source = Path(source)
        if not source.exists():
            raise Invalid(f"no such file or folder: {source}")
        if source.is_file():
            return self._send(source, name, description, skip_invalid, resize_policy, progress)
        # The zip goes to disk, not memory: a dataset can be gigabytes.
        with tempfile.TemporaryDirectory(prefix="headstart-upload-") as scratch:
            archive = Path(scratch) / f"{source.name or 'dataset'}.zip"
            zip_folder(source, archive)
            return self._send(archive, name, description, skip_invalid, resize_policy, progress)

    def _send(
        self,
        archive: Path,
        name: str,
        description: str,
        skip_invalid: bool,
        resize_policy: str | None,
        progress: Callable[[int, int], None] | None,
    ) -> DatasetPublic:
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
        return parse(response, DatasetPublic)

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
