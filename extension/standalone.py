"""The catalog service on free loopback ports: alone in its own `jupyter server`, or under a real hub.

For the benchmarks and tests that need the real service in processes of their own. `serve_catalog`
runs the extension alone: Jupyter's config, data and runtime folders are private to the run, so no
user or machine config leaks in, and the server is a single-user lab whose token signs in as `user`.
`serve_hub` runs a JupyterHub config (the repository's `hub_config/jupyterhub_config.py`) behind
configurable-http-proxy, with the catalog as its managed service, and makes its users and tokens.
`serve_s3` runs a real S3 server for an object store (moto's server mode, from the test extra).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
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


# --- under the hub --------------------------------------------------------------------------

# Bounds on a slow machine: the hub starts the proxy and the service, the service imports Keras.
HUB_START_SECONDS = 90
HUB_STOP_SECONDS = 20

# What the run's admin service may do: make users, their tokens, and see their servers' state.
ADMIN_SCOPES = ["admin:users", "admin:servers", "admin:server_state", "tokens"]


@dataclass
class Hub:
    """A running hub: its public URL, the admin client, the users' tokens and where it keeps things."""

    url: str
    admin: httpx.Client
    tokens: dict[str, str]
    log: Path
    password: str  # the shared password that signs anyone in
    home: Path  # HEADSTART_HOME: the catalog, and the hub's state in hub/

    @property
    def service_url(self) -> str:
        return f"{self.url}services/headstart/"

    def new_token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of `user`, with all of the user's scopes unless `scopes` narrows them."""
        body = {
            "note": "headstart.extension.standalone",
            **({"scopes": scopes} if scopes is not None else {}),
        }
        response = self.admin.post(f"users/{user}/tokens", json=body)
        response.raise_for_status()
        return str(response.json()["token"])


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_for(what: str, check: Callable[[], bool], hub: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `check()` until it is true; RuntimeError with the hub's log if the hub dies or time runs out."""
    deadline = time.monotonic() + HUB_START_SECONDS
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise RuntimeError(f"the hub exited ({hub.returncode}) while waiting for {what}:\n{_tail(log)}")
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not happen within {HUB_START_SECONDS} s:\n{_tail(log)}")


def _stop_hub(hub: subprocess.Popen[bytes], state: Path) -> None:
    """Stop the hub, which stops the proxy, the service and users' servers, within bounds."""
    if hub.poll() is not None:
        return
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(HUB_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        # A stuck hub leaves its proxy behind, in a session of its own: its pid file names it.
        with contextlib.suppress(ValueError, OSError):
            os.kill(int((state / "proxy.pid").read_text().strip()), signal.SIGKILL)
        os.killpg(hub.pid, signal.SIGKILL)
        hub.wait(HUB_STOP_SECONDS)


@contextmanager
def serve_hub(
    home: Path, config_file: Path, extra_config: str = "", users: Iterable[str] = ("alice", "bob")
) -> Iterator[Hub]:
    """Run the hub of `config_file` with `home` as its HEADSTART_HOME until the block ends.

    Whatever `home` holds already (a seeded catalog, users' folders) is what the hub finds there.
    `extra_config` is more config-file lines, read after the config (such as another `c.Spawner.cmd`
    for users' servers). The hub signs anyone in with one generated password; `users` are made, each
    with an API token, before the block starts, once the catalog service answers.
    """
    admin_token = secrets.token_hex(32)
    password = secrets.token_urlsafe(16)
    config = home / "jupyterhub_config.py"
    config.write_text(
        f"c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(config_file)!r})  # noqa: F821\n"
        f"c.JupyterHub.services.append({{'name': 'run-admin', 'api_token': {admin_token!r}}})\n"
        f"c.JupyterHub.load_roles.append(\n"
        f"    {{'name': 'run-admin', 'scopes': {ADMIN_SCOPES!r}, 'services': ['run-admin']}}\n"
        f")\n"
        f"{extra_config}\n"
    )
    url = f"http://127.0.0.1:{free_port()}/"
    env = {
        **os.environ,
        "HEADSTART_HOME": str(home),
        "HEADSTART_HUB_URL": url,
        "HEADSTART_HUB_API_PORT": str(free_port()),
        "HEADSTART_PROXY_API_PORT": str(free_port()),
        "HEADSTART_SERVICE_PORT": str(free_port()),
        "HEADSTART_AUTHENTICATOR": "shared-password",
        "HEADSTART_HUB_PASSWORD": password,
        # The service trains and evaluates; TensorFlow's chatter would drown the log.
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.pop("JUPYTERHUB_API_TOKEN", None)
    env.pop("HEADSTART_URL", None)
    log = home / "hub.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    admin = httpx.Client(
        base_url=f"{url}hub/api/", headers={"Authorization": f"token {admin_token}"}, timeout=30
    )
    try:
        _wait_for("the hub's API", lambda: admin.get("").status_code == 200, process, log)
        names = list(users)
        admin.post("users", json={"usernames": names}).raise_for_status()
        running = Hub(url=url, admin=admin, tokens={}, log=log, password=password, home=home)
        running.tokens = {name: running.new_token(name) for name in names}
        if names:
            me = f"{running.service_url}headstart/me"
            auth = {"Authorization": f"token {running.tokens[names[0]]}"}
            _wait_for(
                "the catalog service",
                lambda: httpx.get(me, headers=auth, timeout=5).status_code == 200,
                process,
                log,
            )
        yield running
    finally:
        admin.close()
        _stop_hub(process, home / "hub")


@contextmanager
def serve_s3(log: Path, buckets: Iterable[str] = ("headstart",)) -> Iterator[dict[str, str]]:
    """An S3 server on a free loopback port (moto's server mode, the one s3fs's own tests run
    against) with `buckets` made, until the block ends; the environment that points S3 clients
    (s3fs, boto3) at it: AWS_ENDPOINT_URL and made-up credentials."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "AWS_ACCESS_KEY_ID": "headstart",
        "AWS_SECRET_ACCESS_KEY": "headstart",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                httpx.get(endpoint, timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start: {_tail(log)}") from None
                time.sleep(0.2)
        for bucket in buckets:
            httpx.put(f"{endpoint}/{bucket}", timeout=30).raise_for_status()
        yield settings
    finally:
        server.terminate()
        try:
            server.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(STOP_SECONDS)
