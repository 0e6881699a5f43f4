"""Evaluations: score a model version on a dataset split, or predict labels for uploaded images."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import httputil, web

from headstart.extension.catalog.tables import User
from headstart.extension.handlers.base import CatalogHandler, UploadHandler
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import EvaluationRequest, JobPublic


class EvaluationsHandler(CatalogHandler):
    """`POST headstart/evaluations`: a version's score on a split: 200 with the cached score, or 202
    with the job that computes it (queued once, however many ask)."""

    auth_resource = "catalog:evaluations"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.read_json(EvaluationRequest)
        viewer = await self.viewer()
        cached, job = await self.call(
            self.catalog.evaluations.submit_split,
            viewer,
            body.model_id,
            body.dataset,
            body.split,
            version=body.version,
            top_k=body.top_k,
        )
        if job is None:
            self.write_json(cached)
        else:
            self.write_job(job, job.id)


@web.stream_request_body
class PredictionsHandler(UploadHandler):
    """`POST headstart/models/{id}/predictions?top_k=&version=`: top-k labels of multipart `images` files.

    The prediction is a job like any other, but its answer is the predictions: the handler waits for
    the job on the event loop, holding no thread.
    """

    auth_resource = "catalog:evaluations"

    def body_limit(self) -> int:
        return self.catalog_app.max_prediction_bytes

    def check_arguments(self) -> None:
        self.query_int("top_k", low=1, high=100)
        self.query_int("version", low=1)

    @web.authenticated
    @authorized
    async def post(self, model_id: str) -> None:
        path = await self.uploaded()
        viewer = await self.viewer()
        job = await self.call(
            self._submit,
            viewer,
            int(model_id),
            path,
            top_k=self.query_int("top_k", 3, low=1, high=100),
            version=self.query_int("version", low=1),
        )
        ended = await self.catalog.jobs.ended(job.id)
        self.write_json(ended.result().to_dict())

    def _submit(
        self, viewer: User, model_id: int, body: Path, *, top_k: int | None, version: int | None
    ) -> JobPublic:
        # The body is capped by `max_prediction_bytes`, so parsing it whole is bounded.
        files: dict[str, list[httputil.HTTPFile]] = {}
        headers = self.request.headers
        try:
            httputil.parse_body_arguments(
                headers.get("Content-Type", ""), body.read_bytes(), {}, files, headers
            )
        except httputil.HTTPInputError as error:
            raise Invalid(f"the body is not valid multipart/form-data: {error}") from None
        images = files.get("images", [])
        if not images:
            raise Invalid("send the images as multipart/form-data files in the field 'images'")
        store = self.catalog.store
        folder = store.scratch("predict")
        try:
            names = []
            for number, image in enumerate(images):
                # One folder per file keeps the client's names, even repeated ones, and no path parts.
                name = Path(image.filename or "image").name or "image"
                target = folder / str(number) / name
                target.parent.mkdir()
                target.write_bytes(image.body)
                names.append(name)
            return self.catalog.evaluations.submit_predictions(
                viewer, model_id, folder, names, version=version, top_k=top_k or 3
            )
        except BaseException:
            store.delete(store.key_of(folder))
            raise


default_handlers = [
    (r"/headstart/evaluations", EvaluationsHandler),
    (r"/headstart/models/(\d+)/predictions", PredictionsHandler),
]
