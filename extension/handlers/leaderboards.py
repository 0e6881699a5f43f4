"""Leaderboards: every model visible to the caller, scored on a dataset's test split and ranked."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler


class LeaderboardHandler(CatalogHandler):
    """`GET headstart/leaderboards/{dataset id or name}`: scores are computed once per model version."""

    auth_resource = "catalog:leaderboards"

    @web.authenticated
    @authorized
    async def get(self, dataset: str) -> None:
        viewer = await self.viewer()
        boards = self.catalog.evaluations
        gzipped = self.wants_gzip()
        board = boards.kept_board(viewer, dataset)
        if board is None:
            board = await self.call(boards.board, viewer, dataset, gzipped=gzipped)
        if gzipped:
            self.finish_json(board.gzip, etag=board.gzip_etag, encoding="gzip")
        else:
            self.finish_json(board.json, etag=board.etag, encoding="identity")


default_handlers = [(r"/headstart/leaderboards/([^/]+)", LeaderboardHandler)]
