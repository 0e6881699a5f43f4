"""The catalog on a real JupyterHub: privacy between two users, refusals, and a kernel's token.

Every request goes through the proxy to the managed service, as a notebook's would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import keras
import pytest

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import Forbidden, NotFound
from headstart.kernels.schemas import TrainingConfig
from tests.e2e.conftest import Hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READ = "custom:headstart:read"
ACCESS = "access:services!service=headstart"


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Iterator[HeadstartClient]:
    with HeadstartClient(hub.service_url, hub.tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def bob(hub: Hub) -> Iterator[HeadstartClient]:
    with HeadstartClient(hub.service_url, hub.tokens["bob"]) as client:
        yield client


def test_the_hub_user_owns_what_they_create(alice: HeadstartClient, bob: HeadstartClient) -> None:
    assert (alice.me(), bob.me()) == ("alice", "bob")


def test_a_private_model_stays_private_until_published(
    alice: HeadstartClient, bob: HeadstartClient, shapes_folder: Path, tmp_path: Path
) -> None:
    alice.datasets.add(shapes_folder, name="shapes")
    model = alice.models.create(
        name="alice-private", architecture="small_cnn", weights=None, options={"filters": 2}, public=False
    )

    assert model.id not in [m.id for m in bob.models.list()]
    with pytest.raises(NotFound):
        bob.models.get(model.id)
    with pytest.raises(NotFound):
        bob.models.download(model.id, tmp_path)
    with pytest.raises(NotFound):
        bob.evaluations.on_split(model.id, "shapes")
    with pytest.raises(NotFound):
        bob.trainings.begin(model.id, "shapes", TrainingConfig(epochs=1))

    alice.models.update(model.id, public=True)
    assert bob.models.get(model.id).name == "alice-private"
    assert model.id in [m.id for m in bob.models.list()]
    path = bob.models.download(model.id, tmp_path)
    assert keras.saving.load_model(path).count_params() > 0

    training = bob.trainings.start(model.id, "shapes", TrainingConfig(epochs=1), poll=0.5, timeout=120)
    assert training.status == "candidate"
    child = bob.trainings.decide(training.id, "keep_both", name="bob-retrained")
    assert child is not None and child.parent_id == model.id and child.owner == "bob"

    with pytest.raises(Forbidden):
        bob.models.update(model.id, name="bob-renamed")
    with pytest.raises(Forbidden):
        bob.models.delete(model.id)
    assert alice.models.get(model.id).name == "alice-private"


def test_an_anonymous_request_is_refused(hub: Hub) -> None:
    response = httpx.get(f"{hub.service_url}headstart/models", follow_redirects=False, timeout=30)
    assert response.status_code in (302, 401, 403)
    assert "items" not in response.text


@pytest.mark.parametrize("user", ["alice", "bob"])
@pytest.mark.parametrize("path", ["api/kernels", "api/sessions", "api/terminals"])
def test_the_service_runs_no_code_for_anyone(hub: Hub, user: str, path: str) -> None:
    auth = {"Authorization": f"token {hub.tokens[user]}"}
    listing = httpx.get(f"{hub.service_url}{path}", headers=auth, timeout=30)
    starting = httpx.post(f"{hub.service_url}{path}", headers=auth, json={}, timeout=30)
    assert listing.status_code in (403, 404) and starting.status_code in (403, 404)
    # Kernels and sessions exist in every jupyter-server: the authorizer, not a missing route, refuses.
    if path != "api/terminals":
        assert listing.status_code == 403


def test_a_token_without_the_write_scope_only_reads(hub: Hub) -> None:
    with HeadstartClient(hub.service_url, hub.new_token("bob", [ACCESS, READ])) as reader:
        assert reader.me() == "bob"
        reader.models.list()
        with pytest.raises(Forbidden):
            reader.models.create(name="nope", architecture="small_cnn", weights=None, options={"filters": 2})


def test_a_token_without_access_to_the_service_is_refused(hub: Hub) -> None:
    token = hub.new_token("bob", ["read:users:name!user=bob"])
    response = httpx.get(
        f"{hub.service_url}headstart/me", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code in (401, 403)


def test_a_kernels_token_reaches_the_service(hub: Hub, bob: HeadstartClient) -> None:
    """Bob's own server gets HEADSTART_URL and a JUPYTERHUB_API_TOKEN that the service accepts."""
    # Private: only a token that is bob's, with the read scope, lists it.
    tiny = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}}
    own = bob.models.create(name="bob-for-his-kernel", public=False, **tiny)
    hub.admin.post("users/bob/server").raise_for_status()
    try:
        environment = server_environment(hub, "bob")
        assert environment["HEADSTART_URL"] == hub.service_url
        with HeadstartClient(environment["HEADSTART_URL"], environment["JUPYTERHUB_API_TOKEN"]) as kernel:
            assert kernel.me() == "bob"
            assert own.id in [model.id for model in kernel.models.list(mine=True)]
    finally:
        hub.admin.delete("users/bob/server")


def server_environment(hub: Hub, user: str, seconds: float = 60) -> dict[str, str]:
    """The environment the spawner gave `user`'s server, which its kernels inherit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        model = hub.admin.get(f"users/{user}").json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready") and "pid" in server.get("state", {}):
            raw = Path(f"/proc/{server['state']['pid']}/environ").read_bytes()
            pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
            return {key.decode(): value.decode() for key, value in pairs}
        time.sleep(0.5)
    pytest.fail(f"{user}'s server was not ready within {seconds:g} s")
