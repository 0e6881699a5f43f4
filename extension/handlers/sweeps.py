"""Sweeps: start one (many heads in one job), list yours, show one with its runs ranked."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler
from headstart.kernels.schemas import SweepCreate


class SweepsHandler(CatalogHandler):
    """`POST headstart/sweeps`: record a sweep and answer 202 while its job runs; `GET`: yours."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.sweeps.list, viewer))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.read_json(SweepCreate)
        viewer = await self.viewer()
        begun = await self.call(
            self.catalog.sweeps.begin,
            viewer,
            body.model_id,
            body.dataset,
            body.grid,
            draws=body.draws,
            config=body.config,
        )
        self.write_job(begun, begun.job.id)  # type: ignore[union-attr]


class SweepHandler(CatalogHandler):
    """`GET headstart/sweeps/{id}`: a sweep, its job and its runs, best val accuracy first.

    Each run is a training: its epochs, and once the job ends its candidate, decided at
    `POST headstart/trainings/{id}/decision`.
    """

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self, sweep_id: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.sweeps.get, viewer, int(sweep_id)))


default_handlers = [(r"/headstart/sweeps", SweepsHandler), (r"/headstart/sweeps/(\d+)", SweepHandler)]
