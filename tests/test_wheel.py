"""A wheel install turns the catalog on in no jupyter server; its operator turns it on on purpose.

The wheel is built from what hub_config/k8s/Dockerfile copies into its image, and installed with
`--no-deps` into a fresh venv. The venv sees .venv's site-packages through a .pth line instead of
reinstalling TensorFlow and friends; the .pth files in that folder (the editable install's finder
among them) are not run, so `headstart` comes from the wheel.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from headstart.extension.standalone import free_port
from tests.e2e.conftest import Hub, require_proxy, running_hub

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "hub_config" / "k8s" / "Dockerfile"
EXTENSION = "headstart.extension"
# README's way to run the catalog in a plain jupyter lab.
ENABLE = f"--ServerApp.jpserver_extensions={EXTENSION}=True"
# Where the fresh venv finds everything but headstart: .venv's own site-packages.
DEPENDENCIES = sysconfig.get_paths()["purelib"]
# jupyter-server's identity model, with the permissions asked about.
ASK_PERMISSIONS = {"permissions": json.dumps({"contents": ["read"]})}
START_SECONDS = 60
STOP_SECONDS = 15


@dataclass
class Venv:
    """The fresh venv with the wheel installed: its interpreter and its sys.prefix."""

    python: Path
    prefix: Path

    def run(self, *args: str, env: dict[str, str]) -> str:
        """The venv's `python <args>`, run in the venv's own folder (a `python -m` run in the checkout
        would import the checkout's headstart/); its output, without the terminal's colours."""
        done = subprocess.run(
            [str(self.python), *args], cwd=self.prefix, env=env, capture_output=True, text=True
        )
        output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
        assert done.returncode == 0, output
        return output


def private_jupyter(root: Path) -> dict[str, str]:
    """An environment whose Jupyter config, data and runtime folders are `root`'s, so that no
    ~/.jupyter of the machine decides what a test sees."""
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_CONFIG_PATH": "",
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("JUPYTERHUB_API_TOKEN", "HEADSTART_URL", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    return env


def pip(*args: str, env: dict[str, str]) -> None:
    """.venv's pip, offline."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-index"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def copy_as_the_dockerfile_does(target: Path) -> None:
    """Lay out under `target` what the Dockerfile's COPY lines put in /src, which it pip-installs."""
    copies = [line.split()[1:] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")]
    for *sources, destination in copies:
        if not destination.startswith("/src/"):
            continue
        into = target / destination.removeprefix("/src/")
        for source in sources:
            path = REPO / source
            to = into / path.name if destination.endswith("/") else into
            if path.is_dir():
                shutil.copytree(path, to, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, to)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the Dockerfile's copy of the tree, built offline (no index, no build isolation)."""
    root = tmp_path_factory.mktemp("wheel")
    copy_as_the_dockerfile_does(root / "src")
    dist, src = str(root / "dist"), str(root / "src")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", dist, src, env=private_jupyter(root))
    [built] = (root / "dist").glob("headstart-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the wheel installed, as pip leaves it."""
    root = tmp_path_factory.mktemp("venv")
    env = private_jupyter(root)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, env=env)
    # Installed before the .pth exists, so that pip finds no headstart there already.
    pip("--python", str(root / "bin" / "python"), "install", "--no-deps", str(wheel), env=env)
    venv = Venv(python=root / "bin" / "python", prefix=root)
    paths = "import sys, sysconfig; print(sys.prefix, sysconfig.get_paths()['purelib'])"
    prefix, site_packages = venv.run("-c", paths, env=env).split()
    # A .pth line that is a folder joins sys.path; the .pth files inside that folder are not processed.
    (Path(site_packages) / "headstart-test-dependencies.pth").write_text(DEPENDENCIES + "\n")
    return Venv(python=venv.python, prefix=Path(prefix))


@contextmanager
def plain_lab(venv: Venv, root: Path, *args: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`jupyter lab <args>` of `venv`, started in `root`/lab with private Jupyter folders: its URL and
    the headers that carry its token."""
    (root / "lab").mkdir(parents=True)
    token, port = secrets.token_hex(16), free_port()
    url, headers = f"http://127.0.0.1:{port}/", {"Authorization": f"token {token}"}
    command = [str(venv.python), "-m", "jupyterlab", "--no-browser", "--allow-root", *args]
    command += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    command += [f"--IdentityProvider.token={token}"]
    log_path = root / "lab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=root / "lab", env=private_jupyter(root), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not start:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}api/status", headers=headers, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url, headers
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_identity_model(response: httpx.Response, username: str | None = None) -> None:
    """jupyter-server's `GET api/me?permissions=...`, which JupyterLab reads: an identity and the
    permissions asked about (the catalog's old `api/me` answered `{"name": ...}`)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"identity", "permissions"}, body
    assert {"username", "name", "display_name"} <= set(body["identity"]), body
    if username is not None:
        assert body["identity"]["username"] == username
    assert "read" in body["permissions"]["contents"], body


# --- what the wheel installs -------------------------------------------------------------------


def test_the_wheel_installs_its_data_files_and_no_jupyter_config(wheel: Path) -> None:
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    expected = {f"{folder}/{Path(file).name}" for folder, files in data_files.items() for file in files}
    with zipfile.ZipFile(wheel) as archive:
        installed = {name.split(".data/data/", 1)[1] for name in archive.namelist() if ".data/data/" in name}
    assert "share/jupyter/kernels/headstart/kernel.json" in installed
    assert installed == expected
    # Nothing lands in etc/jupyter/, where a jupyter_server_config.d file would enable the
    # extension in every jupyter server of the environment.
    assert [path for path in installed if path.startswith("etc/")] == []


def test_the_wheel_carries_the_tables_front_end(wheel: Path) -> None:
    # The widgets' Table reads its ES module and styles from files beside grid.py.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"headstart/widgets/grid.js", "headstart/widgets/grid.css"} <= names
        assert b"export default" in archive.read("headstart/widgets/grid.js")


def test_the_venv_imports_headstart_from_the_wheel(wheel_venv: Venv, tmp_path: Path) -> None:
    code = (
        "import headstart.extension as ours, jupyter_server as theirs; print(ours.__file__, theirs.__file__)"
    )
    ours, theirs = wheel_venv.run("-c", code, env=private_jupyter(tmp_path)).split()
    assert Path(ours).is_relative_to(wheel_venv.prefix)
    assert Path(theirs).is_relative_to(DEPENDENCIES)


def test_the_wheel_carries_the_compiled_optimizer_steps(
    wheel: Path, wheel_venv: Venv, tmp_path: Path
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        compiled = [name for name in archive.namelist() if "/_optimizers." in name]
    # the source, its stub for type checkers, and the module it built
    assert sorted(Path(name).suffix for name in compiled) == [".c", ".pyi", ".so"]
    code = "from headstart.kernels.engine import _optimizers; print(_optimizers.__file__)"
    assert Path(wheel_venv.run("-c", code, env=private_jupyter(tmp_path)).strip()).is_relative_to(
        wheel_venv.prefix
    )


def test_jupyter_server_lists_the_extension_nowhere(wheel_venv: Venv, tmp_path: Path) -> None:
    listed = wheel_venv.run("-m", "jupyter_server", "extension", "list", env=private_jupyter(tmp_path))
    assert f"Config dir: {wheel_venv.prefix / 'etc' / 'jupyter'}" in listed  # the venv's own was read
    assert EXTENSION not in listed


# --- a plain jupyter lab -----------------------------------------------------------------------


def test_a_plain_lab_opens_no_catalog(wheel_venv: Venv, tmp_path: Path) -> None:
    with plain_lab(wheel_venv, tmp_path) as (url, headers):
        assert_identity_model(httpx.get(f"{url}api/me", params=ASK_PERMISSIONS, headers=headers))
        assert httpx.get(f"{url}headstart/me", headers=headers).status_code == 404
        assert httpx.get(f"{url}headstart/models", headers=headers).status_code == 404
    assert not (tmp_path / "lab" / "var").exists()
    assert "headstart catalog" not in (tmp_path / "lab.log").read_text()


def test_a_lab_with_the_extension_enabled_on_purpose_serves_the_catalog_beside_api(
    wheel_venv: Venv, tmp_path: Path
) -> None:
    with plain_lab(wheel_venv, tmp_path, ENABLE) as (url, headers):
        assert_identity_model(httpx.get(f"{url}api/me", params=ASK_PERMISSIONS, headers=headers))
        me = httpx.get(f"{url}headstart/me", headers=headers)
        assert me.status_code == 200 and me.json() == {"name": getpass.getuser()}
        page = httpx.get(f"{url}headstart/models", headers=headers)
        assert page.status_code == 200
        assert page.json()["items"] == [] and page.json()["total"] == 0
        assert httpx.get(f"{url}lab", headers=headers).status_code == 200  # JupyterLab itself still serves
    # A one-person catalog, in var/ of the folder the lab started in.
    assert (tmp_path / "lab" / "var" / "catalog.sqlite").is_file()


# --- users' servers under the hub --------------------------------------------------------------


def wait_until_ready(hub: Hub, user: str, seconds: float = 90) -> list[str]:
    """Wait for `user`'s server to be ready; the command line it runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        server = hub.admin.get(f"users/{user}").json().get("servers", {}).get("", {})
        if server.get("ready") and "pid" in server.get("state", {}):
            return Path(f"/proc/{server['state']['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
        time.sleep(0.5)
    pytest.fail(f"{user}'s server was not ready within {seconds:g} s")


@pytest.mark.e2e
def test_users_servers_under_the_hub_open_no_catalog(wheel_venv: Venv, tmp_path: Path) -> None:
    """alice's and bob's servers run from the wheel's venv, and bob has also enabled the extension in
    his own ~/.jupyter. Neither opens a catalog: the hub's config keeps it off in users' servers."""
    require_proxy()
    home = tmp_path / "hub-home"
    bob_config = home / "hub" / "users" / "bob" / ".jupyter" / "jupyter_server_config.json"
    bob_config.parent.mkdir(parents=True)
    bob_config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {EXTENSION: True}}}))
    # Its users' servers run the wheel's venv, so this is a hub of its own, not the session's.
    spawn_from_the_wheel = f"c.Spawner.cmd = [{str(wheel_venv.python)!r}, '-m', 'jupyterhub.singleuser']"

    with running_hub(home, extra_config=spawn_from_the_wheel) as hub:
        for user in ("alice", "bob"):
            hub.admin.post(f"users/{user}/server").raise_for_status()
        for user in ("alice", "bob"):
            assert wait_until_ready(hub, user)[0] == str(wheel_venv.python)
            server, headers = f"{hub.url}user/{user}/", {"Authorization": f"token {hub.tokens[user]}"}
            me = httpx.get(f"{server}api/me", params=ASK_PERMISSIONS, headers=headers, timeout=30)
            assert_identity_model(me, username=user)
            assert httpx.get(f"{server}headstart/me", headers=headers, timeout=30).status_code == 404
        log = hub.log.read_text(errors="replace")

    assert list((home / "hub" / "users").rglob("catalog.sqlite")) == []
    # The one catalog that opened is the service's.
    opened = [line for line in log.splitlines() if "headstart catalog:" in line]
    assert len(opened) == 1, opened
    assert str((home / "catalog.sqlite").resolve()) in opened[0]
