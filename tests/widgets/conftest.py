"""A real catalog service for the widgets: a `jupyter server` subprocess with the extension.

It is started once for the session, on 127.0.0.1, with its jobs on the session's Dask cluster and
a catalog seeded through the local managers: the shapes dataset, a public model of bob's (a
classifier for those labels), a private model of bob's, and alice's own public feature vector.
The server is a single-user lab whose token signs in as alice.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from headstart.kernels.client import HeadstartClient


@dataclass
class Service:
    url: str
    token: str
    home: Path
    models: dict[str, int]

    def client(self) -> HeadstartClient:
        return HeadstartClient(self.url, self.token)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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

    root = home / "jupyter"
    root.mkdir()
    config = {
        "ServerApp": {"jpserver_extensions": {"headstart.extension": True}},
        "CatalogApp": {"local_user_name": "alice"},
        "Catalog": {"home": str(home), "revision_poll_seconds": 0.0},
        "JobRunner": {"cluster": "address", "address": dask_scheduler},
    }
    (root / "jupyter_server_config.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root),
        "JUPYTER_CONFIG_PATH": "",
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
    ]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "api/me", headers={"Authorization": f"token {token}"}).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield Service(url, token, home, models)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def client(service: Service) -> Iterator[HeadstartClient]:
    client = service.client()
    yield client
    client.close()
