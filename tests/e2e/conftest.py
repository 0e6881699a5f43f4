"""A real JupyterHub, from hub_config/, behind the real configurable-http-proxy, on loopback ports.

One hub serves the whole session. Its catalog, its database and the proxy's state live in a temporary
`HEADSTART_HOME`. A second config file loads the real one and adds only what a test needs: an admin
service whose token creates the users alice and bob and their API tokens. `running_hub` is shared
with tests/browser, whose hub starts on a seeded catalog.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from headstart.extension.standalone import free_port

REPO = Path(__file__).resolve().parents[2]
HUB_CONFIG = REPO / "hub_config" / "jupyterhub_config.py"
PROXY = "configurable-http-proxy"

# Bounds on a slow machine: the hub starts the proxy and the service, the service imports Keras.
START_SECONDS = 90
STOP_SECONDS = 20

# What the test's admin service may do: make users, their tokens, and see their servers' state.
ADMIN_SCOPES = ["admin:users", "admin:servers", "admin:server_state", "tokens"]

# The session hub's catalog refuses model files over this many bytes, so that a test passes the
# limit with a few MiB instead of the default 512; the tests' tiny models are a few kB.
MODEL_LIMIT = 4 * 2**20


@dataclass
class Hub:
    """The running hub: its public URL, the admin client, the users' tokens and where it keeps things."""

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
        body = {"note": "e2e", **({"scopes": scopes} if scopes is not None else {})}
        response = self.admin.post(f"users/{user}/tokens", json=body)
        response.raise_for_status()
        return str(response.json()["token"])


def wait_for(
    what: str, check: Callable[[], bool], hub: subprocess.Popen[bytes], log: Path, seconds: float
) -> None:
    """Poll `check()` until it is true, failing with the hub's log if the hub dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            pytest.fail(f"the hub exited ({hub.returncode}) while waiting for {what}:\n{tail(log)}")
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {seconds:g} s:\n{tail(log)}")


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(hub: subprocess.Popen[bytes], state: Path) -> None:
    """Stop the hub, which stops the proxy, the service and users' servers, within bounds."""
    if hub.poll() is not None:
        return
    hub.send_signal(signal.SIGTERM)
    try:
        hub.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        # A stuck hub leaves its proxy behind, in a session of its own: its pid file names it.
        pid_file = state / "proxy.pid"
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        os.killpg(hub.pid, signal.SIGKILL)
        hub.wait(STOP_SECONDS)


def require_proxy() -> None:
    """Skip without configurable-http-proxy, or fail in CI, where .ci/run installs it."""
    if shutil.which(PROXY) is None:
        message = f"{PROXY} is not installed: `npm install -g {PROXY}` (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def service_arguments(*arguments: str) -> str:
    """Config lines for `running_hub` that add command-line arguments to the catalog service."""
    service = "next(s for s in c.JupyterHub.services if s['name'] == 'headstart')"
    return "".join(f"{service}['command'].append({argument!r})\n" for argument in arguments)


@contextlib.contextmanager
def running_hub(home: Path, extra_config: str = "") -> Iterator[Hub]:
    """Start the hub of hub_config/ with `home` as its HEADSTART_HOME, make alice and bob, and stop it.

    Whatever `home` holds already (a seeded catalog, users' folders) is what the hub finds there.
    `extra_config` is more config-file lines, read after the real config (such as another
    `c.Spawner.cmd` for users' servers).
    """
    admin_token = secrets.token_hex(32)
    password = secrets.token_urlsafe(16)
    config = home / "jupyterhub_config.py"
    config.write_text(
        f"c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(HUB_CONFIG)!r})  # noqa: F821\n"
        f"c.JupyterHub.services.append({{'name': 'e2e-admin', 'api_token': {admin_token!r}}})\n"
        f"c.JupyterHub.load_roles.append(\n"
        f"    {{'name': 'e2e-admin', 'scopes': {ADMIN_SCOPES!r}, 'services': ['e2e-admin']}}\n"
        f")\n"
        f"{extra_config}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
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
        wait_for("the hub's API", lambda: admin.get("").status_code == 200, process, log, START_SECONDS)
        admin.post("users", json={"usernames": ["alice", "bob"]}).raise_for_status()
        running = Hub(url=url, admin=admin, tokens={}, log=log, password=password, home=home)
        running.tokens = {name: running.new_token(name) for name in ("alice", "bob")}
        me = f"{running.service_url}headstart/me"
        auth = {"Authorization": f"token {running.tokens['alice']}"}
        wait_for(
            "the catalog service",
            lambda: httpx.get(me, headers=auth, timeout=5).status_code == 200,
            process,
            log,
            START_SECONDS,
        )
        yield running
    finally:
        admin.close()
        stop(process, home / "hub")


@pytest.fixture(scope="session")
def shapes_zip(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The shapes dataset as the bytes of a zip of label folders, as a dataset upload sends it."""
    archive = shutil.make_archive(str(tmp_path_factory.mktemp("zips") / "shapes"), "zip", shapes_folder)
    return Path(archive).read_bytes()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_proxy()
    limits = service_arguments(f"--Catalog.max_model_bytes={MODEL_LIMIT}")
    with running_hub(tmp_path_factory.mktemp("hub"), limits) as running:
        yield running
