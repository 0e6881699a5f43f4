"""Datasets: list, upload (a streamed zip), show; a delete is refused, datasets being permanent."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler, UploadHandler
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import Page


@web.stream_request_body
class DatasetsHandler(UploadHandler):
    """`GET headstart/datasets`: a page of datasets; `POST headstart/datasets?name=...`: ingest a zip,
    as a job (202); the job's result names the dataset."""

    auth_resource = "catalog:datasets"
    suffix = ".zip"

    def body_limit(self) -> int:
        return self.catalog.max_archive_bytes

    async def prepare(self) -> None:  # type: ignore[override]
        # Only a POST carries a body to stream; a GET is an ordinary request.
        if self.request.method == "POST":
            await super().prepare()
        else:
            await CatalogHandler.prepare(self)

    def check_arguments(self) -> None:
        if self.query_text("name") is None:
            raise Invalid("a dataset upload needs a name: ?name=...")
        self.query_bool("skip_invalid")

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit, offset = self.page_arguments()
        datasets = await self.call(self.catalog.datasets.list)
        page = datasets[offset : offset + limit]
        self.write_json(Page(items=page, total=len(datasets), limit=limit, offset=offset))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        path = await self.uploaded()
        viewer = await self.viewer()
        job = await self.call(
            self.catalog.datasets.submit,
            viewer,
            path,
            name=self.query_text("name") or "",
            description=self.query_text("description") or "",
            skip_invalid=bool(self.query_bool("skip_invalid")),
            resize_policy=self.query_text("resize_policy"),
        )
        self.hand_over_upload()
        self.write_job(job, job.id)


class DatasetHandler(CatalogHandler):
    """`GET headstart/datasets/{id or name}`; `DELETE` answers 409, since datasets are never deleted."""

    auth_resource = "catalog:datasets"

    @web.authenticated
    @authorized
    async def get(self, ref: str) -> None:
        self.write_json(await self.call(self.catalog.datasets.get, ref))

    @web.authenticated
    @authorized
    async def delete(self, ref: str) -> None:
        viewer = await self.viewer()
        await self.call(self.catalog.datasets.delete, viewer, ref)


default_handlers = [
    (r"/headstart/datasets", DatasetsHandler),
    (r"/headstart/datasets/([^/]+)", DatasetHandler),
]
