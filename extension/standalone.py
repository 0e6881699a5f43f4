"""The catalog service alone: the extension in its own `jupyter server`, on a free loopback port.

For the benchmarks and tests that need the real service in a process of its own rather than under
the hub. Jupyter's config, data and runtime folders are private to the run, so no user or machine
config leaks in; the server is a single-user lab whose token signs in as `user`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_SECONDS = 60
STOP_SECONDS = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    """A running `jupyter server` with the headstart extension: its URL, token and process."""

    url: str
    token: str
    process: subprocess.Popen[bytes]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


@contextmanager
def serve_catalog(
    home: Path, user: str, config: dict[str, dict[str, object]] | None = None
) -> Iterator[Service]:
    """Serve the catalog at `home` until the block ends, signed in as `user`.

    `config` adds traitlets settings by section, e.g. {"Catalog": {...}, "JobRunner": {...}}. A
    `ServerApp.base_url` among them (the hub's `/services/headstart/`) moves the service's URL with it.
    """
    root = Path(tempfile.mkdtemp(prefix="jupyter-", dir=home))
    settings: dict[str, dict[str, object]] = {
        "ServerApp": {"jpserver_extensions": {"headstart.extension": True}},
        "CatalogApp": {"local_user_name": user},
        "Catalog": {"home": str(home)},
    }
    for section, values in (config or {}).items():
        settings[section] = {**settings.get(section, {}), **values}
    (root / "jupyter_server_config.json").write_text(json.dumps(settings))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root),
        "JUPYTER_CONFIG_PATH": "",
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    token, port = secrets.token_hex(16), free_port()
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
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        prefix = str(settings["ServerApp"].get("base_url", "/")).strip("/")
        url = f"http://127.0.0.1:{port}/" + (f"{prefix}/" if prefix else "")
        service = Service(url, token, process)
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(service.url + "headstart/me", headers=service.headers).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                # Not up yet, or up without the catalog's routes so far: ask again shortly.
                time.sleep(0.2)
            yield service
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
