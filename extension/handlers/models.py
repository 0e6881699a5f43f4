"""Models: list, create from the zoo, upload, show, change, delete, versions, lineage and download."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler, UploadHandler
from headstart.extension.managers.models import model_filter
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import ExportFormat, ModelCreate, ModelUpdate, check_choice

MODEL = r"/headstart/models/(\d+)"
CHUNK = 1024 * 1024


class ModelsHandler(CatalogHandler):
    """`GET headstart/models`: a filtered page of the visible models; `POST`: build one from the zoo,
    as a job (202); the job's result names the model."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit, offset = self.page_arguments()
        wanted = model_filter(
            owner=self.query_text("owner"),
            kind=self.query_text("kind"),
            labels=self.query_list("labels"),
            mine=bool(self.query_bool("mine")),
            public=self.query_bool("public"),
        )
        viewer = await self.viewer()
        snapshot = await self.models_snapshot()
        self.finish_json(snapshot.page_json(viewer.id, wanted, limit, offset))  # type: ignore[arg-type]

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.read_json(ModelCreate)
        viewer = await self.viewer()
        job = await self.call(self.catalog.models.submit_create, viewer, **body.model_dump())
        self.write_job(job, job.id)


@web.stream_request_body
class ModelUploadHandler(UploadHandler):
    """`POST headstart/models/upload?name=&labels=&description=&public=`: a streamed `.keras` file,
    validated as a job (202)."""

    auth_resource = "catalog:models"
    suffix = ".keras"  # the validator accepts .keras files only

    def body_limit(self) -> int:
        return self.catalog.max_model_bytes

    def check_arguments(self) -> None:
        if self.query_text("name") is None:
            raise Invalid("a model upload needs a name: ?name=...")
        self.query_bool("public")

    @web.authenticated
    @authorized
    async def post(self) -> None:
        path = await self.uploaded()
        viewer = await self.viewer()
        job = await self.call(
            self.catalog.models.submit_upload,
            viewer,
            path,
            name=self.query_text("name") or "",
            labels=self.query_list("labels"),
            description=self.query_text("description") or "",
            public=bool(self.query_bool("public")),
        )
        self.hand_over_upload()
        self.write_job(job, job.id)


class ModelHandler(CatalogHandler):
    """`GET`, `PATCH` and `DELETE headstart/models/{id}`; only the owner changes or deletes."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        viewer = await self.viewer()
        snapshot = await self.models_snapshot()
        self.finish_json(snapshot.get(viewer.id, int(model_id)).json)  # type: ignore[arg-type]

    @web.authenticated
    @authorized
    async def patch(self, model_id: str) -> None:
        body = self.read_json(ModelUpdate)
        viewer = await self.viewer()
        model = await self.call(
            self.catalog.models.update, viewer, int(model_id), **body.model_dump(exclude_unset=True)
        )
        self.write_json(model)

    @web.authenticated
    @authorized
    async def delete(self, model_id: str) -> None:
        viewer = await self.viewer()
        await self.call(self.catalog.models.delete, viewer, int(model_id))
        self.set_status(204)
        self.finish()


class ModelVersionsHandler(CatalogHandler):
    """`GET headstart/models/{id}/versions`: every version of a visible model, oldest first."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.models.versions, viewer, int(model_id)))


class ModelTrainingsHandler(CatalogHandler):
    """`GET headstart/models/{id}/trainings`: the trainings that made a visible model's versions."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.trainings.history, viewer, int(model_id)))


class ModelDownloadHandler(CatalogHandler):
    """`GET headstart/models/{id}/download?version=&format=`: the version as one file, streamed in chunks.

    `keras` (the default) is a normal `.keras` file. `saved_model` and `tflite` are a zip of
    TensorFlow's SavedModel or TFLite file with the model's labels.txt; the first request for one
    answers 202 with the job that converts it, and once it succeeded the same request sends the zip.
    """

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        version = self.query_int("version", low=1)
        format = check_choice(self.query_text("format") or "keras", ExportFormat, "format")
        viewer = await self.viewer()
        if format != "keras":
            export = await self.call(
                self.catalog.models.submit_export, viewer, int(model_id), format, version
            )
            if export.job is not None:
                self.write_job(export.job, export.job.id)
            elif export.path is not None:
                await self._send(export.path, export.name, "application/zip")
            return
        folder = Path(await self.call(tempfile.mkdtemp, dir=self.catalog.store.tmp))
        try:
            path = await self.call(self.catalog.models.download, viewer, int(model_id), folder, version)
            await self._send(path, path.name, "application/octet-stream")
        finally:
            await self.call(shutil.rmtree, folder, ignore_errors=True)

    async def _send(self, path: Path, name: str, content_type: str) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Content-Length", str(path.stat().st_size))
        with path.open("rb") as source:
            while chunk := await self.call(source.read, CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish(set_content_type=content_type)


class ModelNotebookHandler(CatalogHandler):
    """`GET headstart/models/{id}/notebook`: a public model's read-only card, as a notebook to copy."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        await self.viewer()
        notebook = await self.call(self.catalog.cards.read, int(model_id))
        self.set_header("Content-Disposition", f'attachment; filename="model-{int(model_id)}-card.ipynb"')
        self.finish(json.dumps(notebook), set_content_type="application/x-ipynb+json")


class ModelCardHandler(CatalogHandler):
    """`GET headstart/models/{id}/card`: a public model's card rendered as a page, viewable by all users."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self, model_id: str) -> None:
        await self.viewer()
        page = await self.call(self.catalog.cards.html, int(model_id))
        self.finish(page, set_content_type="text/html; charset=UTF-8")


default_handlers = [
    (r"/headstart/models", ModelsHandler),
    (r"/headstart/models/upload", ModelUploadHandler),
    (MODEL, ModelHandler),
    (MODEL + r"/versions", ModelVersionsHandler),
    (MODEL + r"/trainings", ModelTrainingsHandler),
    (MODEL + r"/download", ModelDownloadHandler),
    (MODEL + r"/notebook", ModelNotebookHandler),
    (MODEL + r"/card", ModelCardHandler),
]
