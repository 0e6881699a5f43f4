"""Jobs: the heavy steps of yours, with their state and progress (one per training, ingest...)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler


class JobsHandler(CatalogHandler):
    """`GET headstart/jobs?unfinished=true`: your jobs, oldest first."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        unfinished = bool(self.query_bool("unfinished"))
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.jobs.list, viewer, unfinished=unfinished))


class JobHandler(CatalogHandler):
    """`GET headstart/jobs/{id}`: one of your jobs; another user's is 404."""

    auth_resource = "catalog:trainings"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.jobs.get, viewer, int(job_id)))


default_handlers = [(r"/headstart/jobs", JobsHandler), (r"/headstart/jobs/(\d+)", JobHandler)]
