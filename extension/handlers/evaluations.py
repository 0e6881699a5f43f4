"""Evaluations: score a model version on a dataset split, or predict labels for uploaded images."""

from __future__ import annotations

import tempfile
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import httputil, web

from headstart.extension.catalog.tables import User
from headstart.extension.handlers.base import CatalogHandler, UploadHandler
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import EvaluationRequest


class EvaluationsHandler(CatalogHandler):
    """`POST headstart/evaluations`: a version's score on a split, computed once and then cached."""

    auth_resource = "catalog:evaluations"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.read_json(EvaluationRequest)
        viewer = await self.viewer()
        evaluation = await self.call(
            self.catalog.evaluations.on_split,
            viewer,
            body.model_id,
            body.dataset,
            body.split,
            version=body.version,
            top_k=body.top_k,
        )
        self.write_json(evaluation, 201)


@web.stream_request_body
class PredictionsHandler(UploadHandler):
    """`POST headstart/models/{id}/predictions?top_k=&version=`: top-k labels of multipart `images` files."""

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
        result = await self.call(
            self._predict,
            viewer,
            int(model_id),
            path,
            top_k=self.query_int("top_k", 3, low=1, high=100),
            version=self.query_int("version", low=1),
        )
        self.write_json(result)

    def _predict(
        self, viewer: User, model_id: int, body: Path, *, top_k: int | None, version: int | None
    ) -> dict:
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
        with tempfile.TemporaryDirectory(dir=self.catalog.store.path("tmp")) as folder:
            paths = []
            for number, image in enumerate(images):
                # One folder per file keeps the client's names, even repeated ones, and no path parts.
                target = Path(folder) / str(number) / (Path(image.filename or "image").name or "image")
                target.parent.mkdir()
                target.write_bytes(image.body)
                paths.append(target)
            return self.catalog.evaluations.on_files(
                viewer, model_id, paths, version=version, top_k=top_k or 3
            )


default_handlers = [
    (r"/headstart/evaluations", EvaluationsHandler),
    (r"/headstart/models/(\d+)/predictions", PredictionsHandler),
]
