"""schemathesis against `extension/openapi.yaml` on a real running catalog service (issue 3).

Target: for every operation of the description, a bounded number of generated requests gets no
500 and no response that breaks the spec (its schema or its listed status codes). The service is
a real `jupyter server` subprocess with the extension, on a free 127.0.0.1 port and a fresh
catalog, seeded over HTTP with the shapes dataset, two tiny models and one finished training, so
that generated ids often name real objects.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from headstart.extension.standalone import serve_catalog

pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parents[3] / "extension" / "openapi.yaml"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# The tiny model trains in well under a second an epoch; generated trainings are capped at this,
# so the service is never left training for long (every generated training still runs for real).
MAX_GENERATED_EPOCHS = 2
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
# Which seeded objects a generated path parameter may be swapped for.
KNOWN_IDS = {"model_id": "models", "training_id": "trainings", "dataset": "datasets"}


@dataclass
class Seeded:
    """The running service, a client signed in to it, and the objects seeded through it."""

    url: str
    token: str
    client: httpx.Client
    known: dict[str, list[Any]]


def seed(client: httpx.Client, shapes_zip: bytes) -> dict[str, list[Any]]:
    """One dataset, a public and a private tiny model, and one finished (candidate) training."""
    dataset = client.post("headstart/datasets", params={"name": "shapes"}, content=shapes_zip)
    assert dataset.status_code == 201, dataset.text
    models = []
    for public in (True, False):
        tiny = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}, "public": public}
        model = client.post("headstart/models", json={"name": f"tiny-{public}", **tiny})
        assert model.status_code == 201, model.text
        models.append(model.json()["id"])
    training = client.post(
        "headstart/trainings", json={"model_id": models[0], "dataset": "shapes", "config": {"epochs": 1}}
    )
    assert training.status_code == 202, training.text
    training_id = training.json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"headstart/trainings/{training_id}").json()["status"] == "running":
        assert time.monotonic() < deadline, "the seed training did not finish"
        time.sleep(0.2)
    return {"models": models, "trainings": [training_id], "datasets": [dataset.json()["id"], "shapes"]}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, shapes_zip: bytes) -> Iterator[Seeded]:
    """The extension in its own `jupyter server` (headstart.extension.standalone), seeded over HTTP."""
    home = tmp_path_factory.mktemp("schemathesis")
    try:
        with (
            serve_catalog(home, "tester") as running,
            httpx.Client(base_url=running.url, headers=running.headers, timeout=60) as client,
        ):
            yield Seeded(running.url, running.token, client, seed(client, shapes_zip))
    finally:
        shutil.rmtree(home, ignore_errors=True)


# A dataset upload is a zip's raw bytes: sent like any other binary body.
schemathesis.serializer.alias("application/zip", "application/octet-stream")
SCHEMA = schemathesis.openapi.from_path(SPEC)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def bounded(case: Any) -> None:
    """Cap a generated training's epochs, so that no generated request runs for long."""
    if case.operation.label == "POST /headstart/trainings" and isinstance(case.body, dict):
        config = case.body.get("config")
        if isinstance(config, dict) and isinstance(config.get("epochs"), int):
            config["epochs"] = min(config["epochs"], MAX_GENERATED_EPOCHS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_service_keeps_to_its_description(service: Seeded, operation: Any, mode: GenerationMode) -> None:
    known = service.known
    swappable = [name for name in KNOWN_IDS if name in operation.path_parameters]

    @given(case=operation.as_strategy(mode), data=st.data())
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: st.DataObject) -> None:
        # Generated ids rarely exist; half the time, one is swapped for a seeded object's.
        for name in swappable:
            if data.draw(st.booleans(), label=f"seeded {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(known[KNOWN_IDS[name]]))
        bounded(case)
        case.call_and_validate(
            base_url=service.url,
            headers={"Authorization": f"token {service.token}"},
            checks=CHECKS,
            timeout=30,
        )

    run()
