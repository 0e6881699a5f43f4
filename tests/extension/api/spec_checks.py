"""schemathesis against `extension/openapi.yaml`: the operations, the seed and one operation's run.

Shared by the run against a catalog served directly (test_schemathesis.py) and the run through the
hub's proxy (tests/e2e/test_schemathesis_hub.py), so that both hold the service to the same checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

SPEC = Path(__file__).resolve().parents[3] / "extension" / "openapi.yaml"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# The tiny model trains in well under a second an epoch; generated trainings are capped at this,
# so the service is never left training for long (every generated training still runs for real).
MAX_GENERATED_EPOCHS = 2
# Which seeded objects a generated path parameter may be swapped for.
KNOWN_IDS = {"model_id": "models", "training_id": "trainings", "dataset": "datasets"}
SEED_SECONDS = 60

# A dataset upload is a zip's raw bytes: sent like any other binary body.
schemathesis.serializer.alias("application/zip", "application/octet-stream")
SCHEMA = schemathesis.openapi.from_path(SPEC)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@dataclass
class Seeded:
    """The catalog's base URL, a token for it, and the objects seeded through it."""

    url: str
    token: str
    known: dict[str, list[Any]]


def made(client: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    """What the job that a 202 answer holds made, once it succeeded."""
    assert answer.status_code == 202, answer.text
    job = answer.json()
    deadline = time.monotonic() + SEED_SECONDS
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job['id']} did not end"
        time.sleep(0.1)
        job = client.get(f"headstart/jobs/{job['id']}").json()
    assert job["state"] == "succeeded", job
    return dict(job["result"])


def seed(client: httpx.Client, shapes_zip: bytes, dataset: str = "shapes") -> dict[str, list[Any]]:
    """One dataset, a public and a private tiny model, and one finished (candidate) training."""
    uploaded = made(client, client.post("headstart/datasets", params={"name": dataset}, content=shapes_zip))
    models = []
    for public in (True, False):
        tiny = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}, "public": public}
        model = made(client, client.post("headstart/models", json={"name": f"tiny-{public}", **tiny}))
        models.append(model["model_id"])
    training = client.post(
        "headstart/trainings", json={"model_id": models[0], "dataset": dataset, "config": {"epochs": 1}}
    )
    assert training.status_code == 202, training.text
    training_id = training.json()["id"]
    deadline = time.monotonic() + SEED_SECONDS
    while client.get(f"headstart/trainings/{training_id}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the seed training did not finish"
        time.sleep(0.2)
    return {"models": models, "trainings": [training_id], "datasets": [uploaded["dataset_id"], dataset]}


def bounded(case: Any) -> None:
    """Cap a generated training's epochs, so that no generated request runs for long."""
    if case.operation.label == "POST /headstart/trainings" and isinstance(case.body, dict):
        config = case.body.get("config")
        if isinstance(config, dict) and isinstance(config.get("epochs"), int):
            config["epochs"] = min(config["epochs"], MAX_GENERATED_EPOCHS)


def check_operation(target: Seeded, operation: Any, mode: GenerationMode, examples: int) -> None:
    """`examples` generated requests to `operation`, each held to CHECKS (no 5xx, the spec's shapes)."""
    swappable = [name for name in KNOWN_IDS if name in operation.path_parameters]

    @given(case=operation.as_strategy(mode), data=st.data())
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any, data: st.DataObject) -> None:
        # Generated ids rarely exist; half the time, one is swapped for a seeded object's.
        for name in swappable:
            if data.draw(st.booleans(), label=f"seeded {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(target.known[KNOWN_IDS[name]]))
        bounded(case)
        case.call_and_validate(
            base_url=target.url,
            headers={"Authorization": f"token {target.token}"},
            checks=CHECKS,
            timeout=30,
        )

    run()
