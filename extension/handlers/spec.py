"""The API's own description (`headstart/openapi.yaml`) and who the catalog thinks the caller is
(`headstart/me`; the server's own `api/me` stays jupyter-server's identity)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from headstart.extension.handlers.base import CatalogHandler

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"


@cache
def openapi_text() -> str:
    """The shipped OpenAPI description, read once."""
    return SPEC.read_text()


class OpenAPIHandler(CatalogHandler):
    """`GET headstart/openapi.yaml`: the OpenAPI 3.0 description of every route."""

    # Reading the description is part of reading the catalog.
    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        text = await self.call(openapi_text)
        self.finish(text, set_content_type="text/yaml; charset=UTF-8")


class MeHandler(CatalogHandler):
    """`GET headstart/me`: the catalog user that owns what this caller creates."""

    auth_resource = "catalog:models"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        viewer = await self.viewer()
        self.write_json({"name": viewer.name})


default_handlers = [
    (r"/headstart/openapi.yaml", OpenAPIHandler),
    (r"/headstart/me", MeHandler),
]
