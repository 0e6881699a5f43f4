"""The transfer benchmark: every body you may see by every dataset, and one cell's per-class figures."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler


class BenchmarkHandler(CatalogHandler):
    """`GET headstart/benchmark[?datasets=a,b]`: the table at once; a missing cell is pending while
    its probe job (queued once, whoever asks) runs, so a client asks again until none is."""

    auth_resource = "catalog:leaderboards"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        viewer = await self.viewer()
        datasets = self.query_list("datasets")
        self.write_json(await self.call(self.catalog.benchmark.table, viewer, datasets))


class BenchmarkCellHandler(CatalogHandler):
    """`GET headstart/benchmark/{body}/{dataset}`: one cell, with precision, recall and support per
    label and the confusion matrix; `body` is its sha256 or a prefix of 6 hex digits or more."""

    auth_resource = "catalog:leaderboards"

    @web.authenticated
    @authorized
    async def get(self, body: str, dataset: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.benchmark.cell, viewer, body, dataset))


default_handlers = [
    (r"/headstart/benchmark", BenchmarkHandler),
    (r"/headstart/benchmark/([^/]+)/([^/]+)", BenchmarkCellHandler),
]
