"""The service itself: who you are, its description, JSON errors for tornado's own 404 and 405, and 500."""

from __future__ import annotations

from functools import cached_property

import pytest
import yaml

from headstart.extension.manager import Catalog
from headstart.extension.managers.model_index import ModelIndex
from headstart.extension.managers.models import ModelManager
from tests.extension.api.conftest import as_json


async def test_me_names_the_catalog_user(api, catalog_app, db_url) -> None:
    # `c.Catalog.*` in the server's config reaches the app's catalog.
    assert catalog_app.catalog.db_url == db_url
    response = await api("GET", "headstart/me")
    assert response.code == 200 and as_json(response) == {"name": catalog_app.local_user_name}


async def test_the_description_is_served_as_yaml(api) -> None:
    response = await api("GET", "headstart/openapi.yaml")
    assert response.code == 200 and response.headers["Content-Type"].startswith("text/yaml")
    assert "/headstart/models" in yaml.safe_load(response.body)["paths"]


@pytest.mark.parametrize(
    "path", ["headstart/models/1/nonsense", "headstart/trainings/x", "headstart/leaderboards/a/b"]
)
async def test_an_unknown_route_is_a_json_404(api, path) -> None:
    response = await api("GET", path)
    assert response.code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert as_json(response)["error"] == "not_found"


async def test_an_unsupported_method_is_a_json_405(api) -> None:
    response = await api("PUT", "headstart/models", body={})
    assert response.code == 405 and as_json(response)["error"] == "not_allowed"


async def test_a_request_without_a_token_is_refused(api) -> None:
    response = await api("GET", "headstart/models", headers={"Authorization": "token wrong"})
    assert response.code == 403 and as_json(response)["error"] == "forbidden"


class BrokenIndex(ModelIndex):
    def current(self):
        raise RuntimeError("secret internals at /srv/catalog")


class BrokenModels(ModelManager):
    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self.index = BrokenIndex(catalog.revisions)


class BrokenCatalog(Catalog):
    """A catalog whose models' snapshot fails unexpectedly, swapped in through `catalog_class`."""

    @cached_property
    def models(self) -> ModelManager:
        return BrokenModels(self)


@pytest.mark.parametrize("catalog_config", [{"CatalogApp": {"catalog_class": BrokenCatalog}}])
async def test_an_unexpected_error_is_500_without_a_traceback(api, catalog) -> None:
    assert isinstance(catalog, BrokenCatalog)
    response = await api("GET", "headstart/models")
    assert response.code == 500
    assert as_json(response) == {"error": "internal", "detail": "internal error"}
    assert b"secret" not in response.body and b"Traceback" not in response.body
