"""Leaderboards: every model visible to the caller, scored on a dataset's test split and ranked."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler


class LeaderboardHandler(CatalogHandler):
    """`GET api/leaderboards/{dataset id or name}`: scores are computed once per model version."""

    auth_resource = "catalog:leaderboards"

    @web.authenticated
    @authorized
    async def get(self, dataset: str) -> None:
        viewer = await self.viewer()
        self.write_json(await self.call(self.catalog.evaluations.leaderboard, viewer, dataset))


default_handlers = [(r"/api/leaderboards/([^/]+)", LeaderboardHandler)]
