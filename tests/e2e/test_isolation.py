"""Users with system accounts (HEADSTART_USERS=system): a user's kernel cannot read the catalog.

The hub runs as root and spawns each user's server as the account of that name, so a kernel reads
only what that account may: not the service's home (0700), not another user's home (0700), while
its catalog calls, which go through the proxy with the server's token, work as before. The accounts
are made for the test and removed after it; that takes root, which CI has.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from headstart.extension.standalone import Hub, serve_hub
from headstart.kernels.client import HeadstartClient
from tests.conftest import system_accounts, traversable
from tests.e2e.conftest import HUB_CONFIG, REPO, require_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE, BOB = "hsalice", "hsbob"  # names no real account on a CI machine has
QUICKSTART = "quickstart.ipynb"


@pytest.fixture(scope="module")
def accounts() -> Iterator[tuple[str, str]]:
    with system_accounts(ALICE, BOB):
        yield ALICE, BOB


def users_interpreter(folder: Path) -> Path:
    """A Python that any account may run, importing what this test's environment has: a venv of the
    base interpreter whose one `.pth` adds this environment's site-packages (and, with them, the
    editable headstart)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    [site_packages] = folder.glob("lib/python*/site-packages")
    purelib = sysconfig.get_paths()["purelib"]
    (site_packages / "headstart-test.pth").write_text(f"import site; site.addsitedir({purelib!r})\n")
    return folder / "bin" / "python"


@dataclass
class Isolated:
    hub: Hub
    home: Path  # the service's HEADSTART_HOME


@pytest.fixture(scope="module")
def isolated(accounts: tuple[str, str]) -> Iterator[Isolated]:
    require_proxy()
    # Not pytest's tmp folder, which is 0700 itself: here only the hub's own chmod protects its home.
    outer = Path(tempfile.mkdtemp(prefix="headstart-isolation-"))
    outer.chmod(0o755)
    try:
        python = users_interpreter(outer / "users-python")
        home = outer / "home"
        home.mkdir(mode=0o755)
        purelib = Path(sysconfig.get_paths()["purelib"])
        reached = (REPO / "pyproject.toml", purelib / "x", Path(sys.base_prefix) / "bin" / "x")
        with traversable(*reached), pytest.MonkeyPatch.context() as environment:
            environment.setenv("HEADSTART_USERS", "system")  # serve_hub passes os.environ on
            environment.setenv("HEADSTART_USER_PYTHON", str(python))
            with serve_hub(home, HUB_CONFIG, users=accounts) as hub:
                yield Isolated(hub, home)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def spawn(hub: Hub, user: str, seconds: float = 90) -> None:
    """Start `user`'s server and wait until the hub says it is ready."""
    hub.admin.post(f"users/{user}/server").raise_for_status()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if hub.admin.get(f"users/{user}").json().get("servers", {}).get("", {}).get("ready"):
            return
        time.sleep(0.5)
    pytest.fail(f"{user}'s server was not ready within {seconds:g} s")


def run_in_kernel(hub: Hub, user: str, code: str, seconds: float = 120) -> str:
    """Run `code` in a new kernel of `user`'s server, through the proxy as a notebook does; its stdout."""
    auth = {"Authorization": f"token {hub.tokens[user]}"}
    server = f"{hub.url}user/{user}/api/kernels"
    kernel = httpx.post(server, headers=auth, json={"name": "python3"}, timeout=60)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    try:
        url = f"{server.replace('http', 'ws', 1)}/{kernel_id}/channels"
        return asyncio.run(asyncio.wait_for(_execute(url, auth, code), seconds))
    finally:
        httpx.delete(f"{server}/{kernel_id}", headers=auth, timeout=60)


async def _execute(url: str, headers: dict[str, str], code: str) -> str:
    socket = await websocket_connect(HTTPRequest(url, headers=headers))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": msg_id}
    content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
    message = {
        "header": {**header, "version": "5.3", "date": ""},
        "parent_header": {},
        "metadata": {},
        "content": {**content, "user_expressions": {}},
        "channel": "shell",
    }
    socket.write_message(json.dumps(message))
    out: list[str] = []
    try:
        while True:
            raw = await socket.read_message()
            if raw is None:
                raise AssertionError("the kernel's websocket closed before the cell ended")
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = reply["header"]["msg_type"]
            if kind == "stream" and reply["content"]["name"] == "stdout":
                out.append(reply["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(reply["content"]["traceback"]))
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        socket.close()


# What a kernel tries: each path's first byte, and the catalog through its own client.
PROBE = textwrap.dedent(
    """
    import json
    from headstart.kernels.client import HeadstartClient

    def attempt(path):
        try:
            with open(path, "rb") as file:
                file.read(1)
            return "read"
        except PermissionError:
            return "refused"

    seen = {name: attempt(path) for name, path in json.loads(PATHS).items()}
    with HeadstartClient() as catalog:
        seen["me"] = catalog.me()
        seen["mine"] = [model.id for model in catalog.models.list(mine=True)]
    print(json.dumps(seen))
    """
)


def test_a_users_kernel_reads_neither_the_catalog_nor_another_user(isolated: Isolated) -> None:
    hub, home = isolated.hub, isolated.home
    with HeadstartClient(hub.service_url, hub.tokens[ALICE]) as alice:
        model = alice.models.create(
            name="alice-private", architecture="small_cnn", weights=None, options={"filters": 2}, public=False
        )
    [model_file] = (home / "store" / "models" / str(model.id)).rglob("*.keras")
    spawn(hub, BOB)
    spawn(hub, ALICE)
    try:
        bob_home = Path(pwd.getpwnam(BOB).pw_dir)
        paths = {
            "catalog": str(home / "catalog.sqlite"),
            "model file": str(model_file),
            "cookie secret": str(home / "hub" / "jupyterhub_cookie_secret"),
            "bob's quickstart": str(bob_home / QUICKSTART),
            "her own quickstart": str(Path(pwd.getpwnam(ALICE).pw_dir) / QUICKSTART),
        }
        for path in paths.values():
            assert Path(path).exists(), path  # each is there; only permissions may stop her
        seen = json.loads(run_in_kernel(hub, ALICE, PROBE.replace("PATHS", repr(json.dumps(paths)))))
    finally:
        for user in (ALICE, BOB):
            hub.admin.delete(f"users/{user}/server")
    assert seen == {
        "catalog": "refused",
        "model file": "refused",
        "cookie secret": "refused",
        "bob's quickstart": "refused",
        "her own quickstart": "read",
        "me": ALICE,
        "mine": [model.id],
    }


def test_the_service_and_each_user_keep_their_homes_to_themselves(isolated: Isolated) -> None:
    assert stat.S_IMODE(isolated.home.stat().st_mode) == 0o700
    spawn(isolated.hub, ALICE)
    isolated.hub.admin.delete(f"users/{ALICE}/server")
    account = pwd.getpwnam(ALICE)
    home = Path(account.pw_dir)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # useradd made it 0755 here
    assert (home / QUICKSTART).stat().st_uid == account.pw_uid  # written as her, not as root
    assert (home / ".headstart" / "quickstart-copied").stat().st_uid == account.pw_uid
