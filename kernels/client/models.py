"""`HeadstartClient.models`: the remote twin of the catalog's ModelManager."""

from __future__ import annotations

import builtins
import zipfile
from collections.abc import Callable
from email.message import Message
from pathlib import Path, PurePosixPath, PureWindowsPath

import httpx

from headstart.kernels.client.connection import (
    CHUNK_BYTES,
    Connection,
    file_chunks,
    parse,
    parse_list,
    parse_page,
    query,
    upload_headers,
)
from headstart.kernels.client.jobs import JobProgress, RemoteJobs, answered_job
from headstart.kernels.errors import HeadstartError, Invalid
from headstart.kernels.schemas import (
    JobPublic,
    ModelCreate,
    ModelPublic,
    ModelUpdate,
    ModelVersionPublic,
    build,
    check_download_file,
    download_name,
    download_suffix,
)

# A download in a format of TensorFlow's asks at most this often: the first answer is the export's
# job, the next the zip that it made.
DOWNLOAD_ASKS = 3


class RemoteModels:
    """Creates, uploads, lists, shows, downloads, changes and deletes models in a remote catalog."""

    def __init__(self, connection: Connection, jobs: RemoteJobs) -> None:
        self._connection = connection
        self._jobs = jobs

    # --- creating ---------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        architecture: str,
        labels: builtins.list[str] | None = None,
        weights: str | None = "imagenet",
        options: dict | None = None,
        seed: int = 0,
        description: str = "",
        public: bool = False,
        imagenet_head: bool = False,
        progress: JobProgress | None = None,
    ) -> ModelPublic:
        """Build a zoo architecture in the catalog: a classifier with labels, a feature vector without.

        The service builds it as a job; this waits for the job and returns the model.

        `imagenet_head` keeps the pretrained ImageNet classifier (1000 labels) of an architecture
        whose weights carry one. `seed` seeds the starting weights; the same seed builds the same model.
        `progress(phase, done, total)` follows the job.
        """
        body = build(
            ModelCreate,
            name=name,
            architecture=architecture,
            labels=labels,
            weights=weights,
            imagenet_head=imagenet_head,
            options=options or {},
            seed=seed,
            description=description,
            public=public,
        )
        response = self._connection.request("POST", "headstart/models", json=body.model_dump(mode="json"))
        return self._made(answered_job(response), progress)

    def upload(
        self,
        path: Path,
        *,
        name: str,
        labels: builtins.list[str] | None = None,
        description: str = "",
        public: bool = False,
        sent: Callable[[int, int], None] | None = None,
        progress: JobProgress | None = None,
    ) -> ModelPublic:
        """Send a `.keras` file to the catalog, which checks it before storing it.

        `sent(bytes sent, total bytes)` follows the upload, `progress(phase, done, total)` the job
        that checks it.
        """
        path = Path(path)
        if not path.is_file():
            raise Invalid(f"no such file: {path}")
        if path.suffix != ".keras":
            raise Invalid(f"model uploads must be .keras files, not {path.name!r}")
        response = self._connection.request(
            "POST",
            "headstart/models/upload",
            params=query(name=name, labels=labels, description=description, public=public),
            content=file_chunks(path, sent),
            headers=upload_headers(path, "application/octet-stream"),
            slow=True,
        )
        return self._made(answered_job(response), progress)

    def _made(self, job: JobPublic, progress: JobProgress | None) -> ModelPublic:
        """The model a create or an upload's validation made, once its job ended."""
        ended = self._jobs.follow(job, progress=progress)
        return self.get((ended.result or {})["model_id"])

    # --- reading ----------------------------------------------------------------------------

    def list(
        self,
        *,
        owner: str | None = None,
        kind: str | None = None,
        labels: builtins.list[str] | None = None,
        mine: bool = False,
        public: bool | None = None,
    ) -> builtins.list[ModelPublic]:
        """Every model you may see, filtered; fetched page by page."""
        filters = query(owner=owner, kind=kind, labels=labels, mine=mine or None, public=public)
        return self._connection.every("headstart/models", ModelPublic, filters)

    def page(
        self,
        *,
        owner: str | None = None,
        kind: str | None = None,
        labels: builtins.list[str] | None = None,
        mine: bool = False,
        public: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[builtins.list[ModelPublic], int]:
        """One page of the models you may see, oldest first, and how many match in all."""
        params = query(
            owner=owner,
            kind=kind,
            labels=labels,
            mine=mine or None,
            public=public,
            limit=limit,
            offset=offset,
        )
        return parse_page(self._connection.request("GET", "headstart/models", params=params), ModelPublic)

    def get(self, model_id: int) -> ModelPublic:
        """One model you may see."""
        return parse(self._connection.request("GET", f"headstart/models/{int(model_id)}"), ModelPublic)

    def versions(self, model_id: int) -> builtins.list[ModelVersionPublic]:
        """Every version of a model, oldest first."""
        response = self._connection.request("GET", f"headstart/models/{int(model_id)}/versions")
        return parse_list(response, ModelVersionPublic)

    def download(self, model_id: int, dest: Path, version: int | None = None, format: str = "keras") -> Path:
        """Write a model version at `dest`, or inside it when it is a folder.

        `format` is `keras` (the default: one `.keras` file), or `saved_model` or `tflite`: a zip of
        TensorFlow's SavedModel folder or `model.tflite` with `labels.txt`, one label per line in
        output order (none for a feature vector). The catalog converts a version to those as a job
        the first time, which this follows, and keeps the zip for later downloads.

        The file appears whole or not at all: it is written under a hidden partial name and renamed.
        """
        suffix = download_suffix(format)
        dest = Path(dest)
        into_folder = dest.is_dir()
        if not into_folder:
            check_download_file(dest, format)
        path = f"headstart/models/{int(model_id)}/download"
        params = query(version=version, format=None if format == "keras" else format)
        for _ in range(DOWNLOAD_ASKS):
            with self._connection.stream("GET", path, params=params) as response:
                if response.status_code == 202:
                    response.read()
                    job = answered_job(response)
                else:
                    if into_folder:
                        dest = dest / self._file_name(response, model_id, version, format)
                    self._save(response, dest, suffix)
                    return dest
            self._jobs.follow(job)
        raise HeadstartError(f"GET {path} answered a new export job {DOWNLOAD_ASKS} times in a row")

    def _save(self, response: httpx.Response, dest: Path, suffix: str) -> None:
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            with partial.open("wb") as file:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    file.write(chunk)
            # Every format is a zip; anything else (a proxy's page served as 200) is no model.
            if not zipfile.is_zipfile(partial):
                what = "a .keras model" if suffix == ".keras" else "a zip"
                raise HeadstartError(f"GET {response.request.url} sent a file that is not {what}")
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)

    def _file_name(self, response: httpx.Response, model_id: int, version: int | None, format: str) -> str:
        """The service's name for the file, or the local catalog's `model-<id>-v<version>.keras` (or
        `-<format>.zip`)."""
        disposition = response.headers.get("Content-Disposition")
        if disposition:
            # email.message decodes RFC 2231 `filename*=` as well as plain `filename=`.
            message = Message()
            message["Content-Disposition"] = disposition
            name = message.get_filename()
            # Only the last part: a name must never steer the file outside the chosen folder.
            name = PureWindowsPath(PurePosixPath(name).name).name if name else None
            if name and name.endswith(download_suffix(format)) and not name.startswith("."):
                return name
        if version is None:
            version = self.get(model_id).version
        return download_name(model_id, version, format)

    # --- changing ---------------------------------------------------------------------------

    def notebook(self, model_id: int, dest: Path) -> Path:
        """Copy a public model's card notebook into `dest` (a file or a folder), to run it yourself."""
        response = self._connection.request("GET", f"headstart/models/{int(model_id)}/notebook")
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"model-{int(model_id)}-card.ipynb"
        partial = dest.with_name(f".{dest.name}.partial")
        partial.write_bytes(response.content)
        partial.replace(dest)
        return dest

    def update(
        self,
        model_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        public: bool | None = None,
    ) -> ModelPublic:
        """Rename, describe, publish or unpublish a model you own; only the fields given change."""
        body = build(ModelUpdate, name=name, description=description, public=public)
        response = self._connection.request(
            "PATCH", f"headstart/models/{int(model_id)}", json=body.model_dump(mode="json", exclude_none=True)
        )
        return parse(response, ModelPublic)

    def delete(self, model_id: int) -> None:
        """Delete a model you own, with its versions, trainings and evaluations."""
        self._connection.request("DELETE", f"headstart/models/{int(model_id)}")
