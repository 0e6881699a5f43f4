"""The service's authorizer over its whole grid: every catalog resource and action, for every kind
of caller, and jupyter-server's own resources that would run code or write files.

The users are the objects jupyter-server and JupyterHub's identity providers hand the authorizer:
a `JupyterHubUser` holding the hub's model of the request's token, or the local `User` of a plain
lab. Nothing here needs a running hub: the scope check is the hub client's own, done locally.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from jupyter_server.auth import IdentityProvider, User
from jupyterhub.services.auth import HubOAuth
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser

from headstart.extension.authz import CODE_RESOURCES, CatalogAuthorizer
from headstart.extension.handlers import default_handlers

ACCESS = "access:services!service=headstart"
NOWHERE = "http://127.0.0.1:9/hub/api"  # the hub client's scope checks run offline
READ = "custom:headstart:read"
WRITE = "custom:headstart:write"

CATALOG_RESOURCES = sorted(
    {handler.auth_resource for _, handler in default_handlers if hasattr(handler, "auth_resource")}
)
ACTIONS = ["read", "write", "execute"]


def hub_user(name: str, scopes: list[str]) -> JupyterHubUser:
    """A user as the hub's identity provider makes it: from the hub's model of the request's token."""
    return JupyterHubUser({"name": name, "kind": "user", "admin": False, "groups": [], "scopes": scopes})


@pytest.fixture(scope="module")
def hub_authorizer() -> CatalogAuthorizer:
    """The authorizer as the managed service `headstart` runs it: access scopes from its name."""
    # The hub client is never asked anything here: only its scope checks run, offline.
    hub_auth = HubOAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api", access_scopes={ACCESS})
    return CatalogAuthorizer(identity_provider=JupyterHubIdentityProvider(hub_auth=hub_auth))


@pytest.fixture(scope="module")
def lab_authorizer() -> CatalogAuthorizer:
    """The authorizer in a plain `jupyter lab`, whose token proves the local user."""
    return CatalogAuthorizer(identity_provider=IdentityProvider(token="lab-token"))


class Caller(NamedTuple):
    """One kind of caller: which server sees it, the user object, and what it may do."""

    kind: str
    where: str  # "hub" for the managed service, "lab" for a plain jupyter lab
    user: Any
    may_read: bool
    may_write: bool


CALLERS = [
    Caller("owner", "hub", hub_user("alice", [ACCESS, READ, WRITE, "read:users!user=alice"]), True, True),
    Caller("reader", "hub", hub_user("bob", [ACCESS, READ]), True, False),
    # Both catalog scopes but no access to this service: JupyterHub's own check refuses first.
    Caller(
        "no-access", "hub", hub_user("carol", [READ, WRITE, "access:services!service=other"]), False, False
    ),
    # Access to the service, but another service's custom scope instead of ours.
    Caller("other-scopes", "hub", hub_user("dave", [ACCESS, "custom:other:read"]), False, False),
    Caller("anonymous", "hub", None, False, False),
    # A user that the hub did not vouch for, under the hub: never taken for the local lab user.
    Caller("unvouched", "hub", User(username="root"), False, False),
    Caller("local", "lab", User(username="me"), True, True),
    Caller("anonymous-lab", "lab", None, False, False),
]
every_caller = pytest.mark.parametrize("caller", CALLERS, ids=[caller.kind for caller in CALLERS])


def allowed(request: pytest.FixtureRequest, caller: Caller, action: str, resource: str) -> bool:
    """The authorizer's answer; the handler is not consulted, so none is passed."""
    authorizer: CatalogAuthorizer = request.getfixturevalue(f"{caller.where}_authorizer")
    return authorizer.is_authorized(None, caller.user, action, resource)  # type: ignore[arg-type]


@pytest.mark.parametrize("resource", CATALOG_RESOURCES)
@pytest.mark.parametrize("action", ACTIONS)
@every_caller
def test_catalog_resources_follow_the_hub_scopes(
    request: pytest.FixtureRequest, resource: str, action: str, caller: Caller
) -> None:
    expected = caller.may_read if action == "read" else caller.may_write
    assert allowed(request, caller, action, resource) is expected


def test_the_grid_covers_every_catalog_resource() -> None:
    assert {"catalog:models", "catalog:datasets", "catalog:trainings", "catalog:evaluations"} <= set(
        CATALOG_RESOURCES
    )
    assert all(resource.startswith("catalog:") for resource in CATALOG_RESOURCES)


@pytest.mark.parametrize("resource", sorted(CODE_RESOURCES))
@pytest.mark.parametrize("action", ACTIONS)
@every_caller
def test_kernels_terminals_and_sessions_are_refused_to_everyone(
    request: pytest.FixtureRequest, resource: str, action: str, caller: Caller
) -> None:
    assert {"kernels", "terminals", "sessions"} <= CODE_RESOURCES
    assert allowed(request, caller, action, resource) is False


@pytest.mark.parametrize("resource", ["contents", "config", "server", "events", "nbconvert", "api"])
@pytest.mark.parametrize("action", ["write", "execute"])
@every_caller
def test_file_and_server_writes_are_refused_to_everyone(
    request: pytest.FixtureRequest, resource: str, action: str, caller: Caller
) -> None:
    assert allowed(request, caller, action, resource) is False


@every_caller
def test_contents_stay_readable_by_whoever_may_read_the_catalog(
    request: pytest.FixtureRequest, caller: Caller
) -> None:
    # The read-only model notebooks are served as contents, to the same people as the catalog.
    assert allowed(request, caller, "read", "contents") is caller.may_read


def test_the_scopes_are_configurable() -> None:
    hub_auth = HubOAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api", access_scopes={ACCESS})
    authorizer = CatalogAuthorizer(
        identity_provider=JupyterHubIdentityProvider(hub_auth=hub_auth),
        read_scope="custom:catalog:browse",
        write_scope="custom:catalog:edit",
    )
    browser = hub_user("erin", [ACCESS, "custom:catalog:browse"])
    assert authorizer.is_authorized(None, browser, "read", "catalog:models")  # type: ignore[arg-type]
    assert not authorizer.is_authorized(None, browser, "write", "catalog:models")  # type: ignore[arg-type]
    reader = hub_user("bob", [ACCESS, READ])
    assert not authorizer.is_authorized(None, reader, "read", "catalog:models")  # type: ignore[arg-type]


class CountedHubAuth(HubOAuth):
    """The hub client, counting its scope checks."""

    def check_scopes(self, required_scopes: Any, user: Any) -> Any:
        self.checks += 1
        return super().check_scopes(required_scopes, user)


def test_answers_are_kept_per_token_scopes() -> None:
    """The hub's checks run once per set of token scopes and kind of action; a token with other
    scopes (a user's roles changed, the hub's cached model refreshed) gets its own answer."""
    hub_auth = CountedHubAuth(api_token="unused", api_url=NOWHERE, access_scopes={ACCESS})
    hub_auth.checks = 0
    authorizer = CatalogAuthorizer(identity_provider=JupyterHubIdentityProvider(hub_auth=hub_auth))
    reader = hub_user("frank", [ACCESS, READ])
    for resource in CATALOG_RESOURCES:
        assert authorizer.is_authorized(None, reader, "read", resource)  # type: ignore[arg-type]
        assert not authorizer.is_authorized(None, reader, "write", resource)  # type: ignore[arg-type]
    # Reading: the hub's access check, then ours; writing: the same two.
    assert hub_auth.checks == 4
    writer = hub_user("frank", [ACCESS, READ, WRITE])
    assert authorizer.is_authorized(None, writer, "write", CATALOG_RESOURCES[0])  # type: ignore[arg-type]
    assert hub_auth.checks == 6
