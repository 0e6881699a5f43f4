"""A token with only the catalog's read scope, on every write route of openapi.yaml, through the hub.

Each route gets a request that bob's full token would have had accepted, on bob's own objects, and
the read-only token must get the JSON 403. Nothing may reach the store's `tmp/` (an upload refused
after its body had been written there would leave a trace in the folder's modification time even
once the file is gone), and nothing may change in the catalog's database. The routes come from the
description itself, so a new write route is covered without a line here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Hub
from tests.extension.api.spec_checks import made

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEC = Path(__file__).resolve().parents[2] / "extension" / "openapi.yaml"
READ = "custom:headstart:read"
ACCESS = "access:services!service=headstart"
# The methods that jupyter-server's `authorized` calls writes, and the catalog's authorizer
# therefore grants only to the write scope.
WRITE_METHODS = ("post", "put", "patch", "delete")
DATASET = "read-only-shapes"
STEADY_SECONDS = 1.0
SETTLE_SECONDS = 60
UNFINISHED = ("queued", "running")
TINY = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}}


@dataclass
class Route:
    method: str
    path: str
    operation: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


def write_routes() -> list[Route]:
    spec = yaml.safe_load(SPEC.read_text())
    return [
        Route(method, path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method in WRITE_METHODS
    ]


@dataclass
class Seeded:
    """Bob's objects that the writes aim at, and what their bodies are made of."""

    model_id: int
    training_id: int
    model_file: bytes
    shapes_zip: bytes
    image: bytes


def authorized(hub: Hub, token: str) -> httpx.Client:
    return httpx.Client(base_url=hub.service_url, headers={"Authorization": f"token {token}"}, timeout=120)


@pytest.fixture(scope="module")
def seeded(hub: Hub, shapes_folder: Path, shapes_zip: bytes) -> Seeded:
    """A dataset, a private tiny model of bob's and a finished training of it, made with his full token."""
    with authorized(hub, hub.tokens["bob"]) as bob:
        made(bob, bob.post("headstart/datasets", params={"name": DATASET}, content=shapes_zip))
        model_id = made(bob, bob.post("headstart/models", json={"name": "bobs-own", **TINY}))["model_id"]
        training = bob.post(
            "headstart/trainings", json={"model_id": model_id, "dataset": DATASET, "config": {"epochs": 1}}
        )
        assert training.status_code == 202, training.text
        training_id = training.json()["id"]
        deadline = time.monotonic() + SETTLE_SECONDS
        while (status := bob.get(f"headstart/trainings/{training_id}").json()["status"]) in UNFINISHED:
            assert time.monotonic() < deadline, "the seed training did not finish"
            time.sleep(0.5)
        assert status == "candidate"
        model_file = bob.get(f"headstart/models/{model_id}/download").content
    image = next(path for path in sorted(shapes_folder.rglob("*")) if path.is_file()).read_bytes()
    return Seeded(model_id, training_id, model_file, shapes_zip, image)


def request_for(route: Route, seeded: Seeded) -> dict[str, Any]:
    """httpx arguments for a request that the route accepts from bob's full token."""
    ids = {"model_id": seeded.model_id, "training_id": seeded.training_id, "dataset": DATASET}
    names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
    unknown = [name for name in names if name not in ids]
    assert not unknown, f"{route.label}: no seeded object for {unknown}; add one to request_for"
    url = route.path.lstrip("/").format(**ids)
    operation_id = route.operation.get("operationId")
    json_bodies: dict[str, Any] = {
        "createModel": {"name": "read-only", **TINY},
        "updateModel": {"name": "renamed-by-a-reader", "public": True},
        "startTraining": {"model_id": seeded.model_id, "dataset": DATASET, "config": {"epochs": 1}},
        "decideTraining": {"decision": "discard"},
        "evaluate": {"model_id": seeded.model_id, "dataset": DATASET, "split": "test"},
    }
    queries = {"uploadModel": {"name": "uploaded-by-a-reader"}, "uploadDataset": {"name": "read-only-upload"}}
    arguments: dict[str, Any] = {"method": route.method.upper(), "url": url}
    if operation_id in queries:
        arguments["params"] = queries[operation_id]
    content = route.operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        arguments["json"] = json_bodies.get(operation_id, {})
    elif "multipart/form-data" in content:
        arguments["files"] = [("images", ("shape.png", seeded.image, "image/png"))]
    elif "application/zip" in content:
        arguments["content"] = seeded.shapes_zip
    elif content:
        arguments["content"] = seeded.model_file
    return arguments


def catalog_rows(hub: Hub) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the catalog's database, table by table."""
    database = sqlite3.connect(f"file:{hub.home / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(database.execute(f'SELECT * FROM "{table}"'), key=repr) for table in tables}
    finally:
        database.close()


def store_tmp(hub: Hub) -> tuple[int, list[str]]:
    """The store's tmp/: when it last changed, and what it holds."""
    folder = hub.home / "store" / "tmp"
    return folder.stat().st_mtime_ns, sorted(path.name for path in folder.iterdir())


def steady(hub: Hub) -> tuple[Any, Any]:
    """The catalog and tmp/ once nothing has moved for a while (the seed's jobs are done)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    before = (catalog_rows(hub), store_tmp(hub))
    while True:
        time.sleep(STEADY_SECONDS)
        now = (catalog_rows(hub), store_tmp(hub))
        if now == before:
            return now
        assert time.monotonic() < deadline, "the catalog did not settle before the test"
        before = now


@pytest.fixture(scope="module")
def reader(hub: Hub) -> Iterator[httpx.Client]:
    with authorized(hub, hub.new_token("bob", [ACCESS, READ])) as reader:
        yield reader


def test_the_description_has_write_routes_of_every_kind() -> None:
    labels = {route.label for route in write_routes()}
    assert {"POST /headstart/models/upload", "POST /headstart/datasets"} <= labels
    assert {"PATCH /headstart/models/{model_id}", "DELETE /headstart/models/{model_id}"} <= labels


def test_a_read_only_token_changes_nothing_on_any_write_route(
    hub: Hub, seeded: Seeded, reader: httpx.Client
) -> None:
    assert reader.get("headstart/me").json() == {"name": "bob"}
    catalog, tmp = steady(hub)
    answers = {}
    for route in write_routes():
        response = reader.request(**request_for(route, seeded))
        content_type = response.headers.get("Content-Type", "")
        answers[route.label] = (response.status_code, content_type, response.text[:200])
    refused = {label: answer for label, answer in answers.items() if answer[0] == 403}
    assert refused == answers, "every write route refuses a read-only token with 403"
    for label, (_, content_type, text) in answers.items():
        assert content_type.startswith("application/json") and '"forbidden"' in text, (label, text)
    assert store_tmp(hub) == tmp, "a refused write reached the store's tmp/"
    assert catalog_rows(hub) == catalog, "a refused write changed the catalog"
