"""A real jupyter-server with the headstart extension, on a fresh catalog under tmp_path.

Every API test runs twice: on a SQLite file and on a fresh database of the real PostgreSQL server
(`db_url`, from tests/conftest.py).

pytest-jupyter's fixtures and hooks are imported here rather than registered as a plugin, so that
its autouse fixtures (a server cleanup after every test) stay inside the API tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and async-test hooks)
from traitlets.config import Config

from tests.conftest import staged_leftovers


@pytest.fixture
def catalog_config() -> dict[str, Any]:
    """Extra `Catalog` or `CatalogApp` config for one test; the defaults suit most."""
    return {}


@pytest.fixture
def jp_server_config(
    tmp_path: Path, db_url: str, catalog_config: dict[str, Any], dask_scheduler: str
) -> Config:
    # Jobs run on the session's Dask cluster, whose workers stay warm from test to test.
    config = Config(
        {
            "ServerApp": {"jpserver_extensions": {"headstart.extension": True}},
            "Catalog": {"home": str(tmp_path / "catalog"), "db_url": db_url},
            "JobRunner": {"cluster": "address", "address": dask_scheduler},
        }
    )
    config.merge(Config(catalog_config))
    return config


@pytest.fixture
def catalog_app(jp_serverapp: Any) -> Any:
    """The running `CatalogApp`, as handlers see it."""
    return jp_serverapp.web_app.settings["headstart"]


@pytest.fixture
def catalog(catalog_app: Any) -> Any:
    return catalog_app.catalog


@pytest.fixture
def me(catalog: Any, catalog_app: Any) -> Any:
    """The catalog user that the server's own token signs in as."""
    return catalog.user(catalog_app.local_user_name)


@pytest.fixture
def bob(catalog: Any) -> Any:
    return catalog.user("bob")


@pytest.fixture(scope="session")
def shapes_zip(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The shapes dataset as the bytes of a zip of label folders."""
    archive = shutil.make_archive(str(tmp_path_factory.mktemp("zips") / "shapes"), "zip", shapes_folder)
    return Path(archive).read_bytes()


def as_json(response: Any) -> Any:
    return json.loads(response.body)


async def finished(api: Any, answer: Any, seconds: float = 120) -> dict[str, Any]:
    """The job that a 202 answer holds, followed (as a client does) until it ended."""
    import asyncio
    import time

    assert answer.code == 202, answer.body
    job = as_json(answer)
    job = job.get("job") or job  # a training's answer holds its job
    assert answer.headers["Location"].endswith(f"headstart/jobs/{job['id']}")
    deadline = time.monotonic() + seconds
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job['id']} did not end"
        await asyncio.sleep(0.05)
        job = as_json(await api("GET", f"headstart/jobs/{job['id']}"))
    return job


async def made(api: Any, answer: Any, kind: str) -> dict[str, Any]:
    """What a 202 answer's job made once it succeeded: the `kind` ("models", "datasets") it names."""
    job = await finished(api, answer)
    assert job["state"] == "succeeded", job
    key = {"models": "model_id", "datasets": "dataset_id"}[kind]
    return as_json(await api("GET", f"headstart/{kind}/{job['result'][key]}"))


def store_tmp(catalog: Any) -> list[str]:
    """What is left under the store's tmp/: nothing, once every request is over."""
    return staged_leftovers(catalog.store)


@pytest.fixture
def api(jp_fetch: Any) -> Any:
    """`await api(method, *path, body=..., params=...)`: the response whatever its status.

    A dict or list body is sent as JSON; bytes go as they are.
    """

    async def call(method: str, *parts: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        if method in ("POST", "PATCH", "PUT") and body is None and "body_producer" not in kwargs:
            body = b""
        return await jp_fetch(*parts, method=method, body=body, raise_error=False, **kwargs)

    return call
