"""A real catalog service for the widgets: a `jupyter server` subprocess with the extension
(`headstart.extension.standalone`).

It is started once for the session, on 127.0.0.1, with its jobs on the session's Dask cluster and
a catalog seeded through the local managers: the shapes dataset, a public model of bob's (a
classifier for those labels), a private model of bob's, and alice's own public feature vector.
The server is a single-user lab whose token signs in as alice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headstart.extension.standalone import serve_catalog
from headstart.kernels.client import HeadstartClient


@dataclass
class Service:
    url: str
    token: str
    home: Path
    models: dict[str, int]

    def client(self) -> HeadstartClient:
        return HeadstartClient(self.url, self.token)


@pytest.fixture(scope="session")
def service(
    tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path, dask_scheduler: str
) -> Iterator[Service]:
    from headstart.extension.manager import Catalog
    from tests.conftest import tiny_model

    home = tmp_path_factory.mktemp("widgets-catalog")
    catalog = Catalog(home=str(home))
    alice, bob = catalog.user("alice"), catalog.user("bob")
    catalog.datasets.add(alice, shapes_folder, name="shapes")
    labels = ["circle", "square", "triangle"]
    models = {
        "bob-public": tiny_model(catalog, bob, name="bob-public", labels=labels, public=True).id,
        "bob-private": tiny_model(catalog, bob, name="bob-private", labels=labels).id,
        "alice-vector": tiny_model(catalog, alice, name="alice-vector", public=True).id,
    }
    catalog.close()

    config = {
        "Catalog": {"revision_poll_seconds": 0.0},
        "JobRunner": {"cluster": "address", "address": dask_scheduler},
    }
    with serve_catalog(home, "alice", config) as running:
        yield Service(running.url, running.token, home, models)


@pytest.fixture
def client(service: Service) -> Iterator[HeadstartClient]:
    client = service.client()
    yield client
    client.close()
