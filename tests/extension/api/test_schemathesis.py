"""schemathesis against `extension/openapi.yaml` on a real running catalog service (issue 3).

Target: for every operation of the description, a bounded number of generated requests gets no
500 and no response that breaks the spec (its schema or its listed status codes). The service is
a real `jupyter server` subprocess with the extension, on a free 127.0.0.1 port and a fresh
catalog, seeded over HTTP with the shapes dataset, two tiny models and one finished training, so
that generated ids often name real objects.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parents[3] / "extension" / "openapi.yaml"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# The tiny model trains in well under a second an epoch; generated trainings are capped at this,
# so the service is never left training for long (every generated training still runs for real).
MAX_GENERATED_EPOCHS = 2
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
# Which seeded objects a generated path parameter may be swapped for.
KNOWN_IDS = {"model_id": "models", "training_id": "trainings", "dataset": "datasets"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A `jupyter server` subprocess with the headstart extension on a fresh catalog under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        config_dir = root / "config"
        config_dir.mkdir(parents=True)
        config = {
            "ServerApp": {"jpserver_extensions": {"headstart.extension": True}},
            "Catalog": {"home": str(root / "catalog")},
        }
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
        # Own config, data and runtime folders: nothing of the user's or the machine's Jupyter leaks in.
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(root / "data"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_CONFIG_PATH": "",
        }
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",  # harmless elsewhere; CI containers often run as root
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={self.token}",
        ]
        self.log = (root / "server.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=60
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                if self.client.get("api/me").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the server did not answer on {self.url} in {timeout} s")

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            # A generated training may still be running, and its thread would hold the exit.
            self.process.kill()
            self.process.wait()
        self.log.close()


def seed(service: Service, shapes_zip: bytes) -> dict[str, list[Any]]:
    """One dataset, a public and a private tiny model, and one finished (candidate) training."""
    client = service.client
    dataset = client.post("api/datasets", params={"name": "shapes"}, content=shapes_zip)
    assert dataset.status_code == 201, dataset.text
    models = []
    for public in (True, False):
        tiny = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}, "public": public}
        model = client.post("api/models", json={"name": f"tiny-{public}", **tiny})
        assert model.status_code == 201, model.text
        models.append(model.json()["id"])
    training = client.post(
        "api/trainings", json={"model_id": models[0], "dataset": "shapes", "config": {"epochs": 1}}
    )
    assert training.status_code == 202, training.text
    training_id = training.json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"api/trainings/{training_id}").json()["status"] == "running":
        assert time.monotonic() < deadline, "the seed training did not finish"
        time.sleep(0.2)
    return {"models": models, "trainings": [training_id], "datasets": [dataset.json()["id"], "shapes"]}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, shapes_zip: bytes) -> Iterator[Service]:
    running = Service(tmp_path_factory.mktemp("schemathesis"))
    try:
        running.wait_ready()
        running.known = seed(running, shapes_zip)  # type: ignore[attr-defined]
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.root / "catalog", ignore_errors=True)


# A dataset upload is a zip's raw bytes: sent like any other binary body.
schemathesis.serializer.alias("application/zip", "application/octet-stream")
SCHEMA = schemathesis.openapi.from_path(SPEC)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def bounded(case: Any) -> None:
    """Cap a generated training's epochs, so that no generated request runs for long."""
    if case.operation.label == "POST /api/trainings" and isinstance(case.body, dict):
        config = case.body.get("config")
        if isinstance(config, dict) and isinstance(config.get("epochs"), int):
            config["epochs"] = min(config["epochs"], MAX_GENERATED_EPOCHS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_service_keeps_to_its_description(service: Service, operation: Any, mode: GenerationMode) -> None:
    known: dict[str, list[Any]] = service.known  # type: ignore[attr-defined]
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
