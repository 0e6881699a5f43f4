"""`CatalogAuthorizer`: who may do what in the catalog service, as JupyterHub scopes.

The service is a jupyter-server that must never run a user's code, so kernels, terminals and every
write outside the catalog are refused to everyone. Catalog resources (`catalog:models`, ...) need the
hub's custom scopes: `custom:headstart:read` to read, `custom:headstart:write` to change anything.
In a plain `jupyter lab`, whose token proves the one local user, the catalog is all theirs.

Enable it with `c.ServerApp.authorizer_class = "headstart.extension.authz.CatalogAuthorizer"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyterhub.singleuser.extension import JupyterHubAuthorizer, JupyterHubIdentityProvider
from traitlets import Unicode

if TYPE_CHECKING:
    from jupyter_server.auth import User
    from jupyter_server.base.handlers import JupyterHandler

# Every catalog handler names a resource with this prefix (`auth_resource = "catalog:models"`).
CATALOG_PREFIX = "catalog:"

# jupyter-server resources that start or reach code: a kernel, a shell, or a session, which starts
# a kernel. The kernel specs go with them, because the service offers no kernel to launch.
CODE_RESOURCES = frozenset({"kernels", "terminals", "sessions", "kernelspecs"})

# What jupyter-server's `authorized` decorator calls a request that changes nothing.
READ = "read"

# Answers kept, one per set of token scopes and kind of action: the hub's scope checks expand every
# scope of the token, twice a request (JupyterHub's own access check, then ours).
KEPT_DECISIONS = 4096


class CatalogAuthorizer(JupyterHubAuthorizer):
    """Catalog resources by hub scope, the server's own resources read-only, code never.

    Under the hub, the request's user is a `JupyterHubUser`, whose `hub_user` is the hub's model of
    the request's token, with the token's `scopes`. JupyterHub's own check (the token may access
    this service) comes first. Without the hub, the server's identity provider has already proven
    the local user, who may do anything in the catalog.
    """

    read_scope = Unicode(
        "custom:headstart:read",
        config=True,
        help="The hub scope that lets a token list, show and download catalog entries and read "
        "leaderboards; declare it in the hub's `c.JupyterHub.custom_scopes` and grant it to users' roles.",
    )
    write_scope = Unicode(
        "custom:headstart:write",
        config=True,
        help="The hub scope that lets a token create, upload, change, train, evaluate on request and "
        "delete; a token with only the read scope browses the catalog but changes nothing.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (the token's scopes, reading) -> the hub checks' answer, which depends on nothing else.
        self._decided: dict[tuple[frozenset[str], bool], bool] = {}

    def is_authorized(self, handler: JupyterHandler, user: User, action: str, resource: str) -> bool:
        """Whether `user` may `action` ("read", "write" or "execute") the `resource`."""
        if not user or resource in CODE_RESOURCES:
            return False
        if action != READ and not resource.startswith(CATALOG_PREFIX):
            # No file, config or server change in the service: its disk is the catalog's.
            return False
        hub_user: dict[str, Any] | None = getattr(user, "hub_user", None)
        if hub_user is None:
            # A user the hub did not vouch for is only good outside the hub: the local lab user.
            return not isinstance(self.identity_provider, JupyterHubIdentityProvider)
        # Reading anything the service serves (the catalog, its read-only notebooks) is reading
        # the catalog; only catalog resources get this far with a write.
        reading = action == READ
        key = (frozenset(hub_user.get("scopes") or ()), reading)
        decided = self._decided.get(key)
        if decided is None:
            needed = self.read_scope if reading else self.write_scope
            decided = super().is_authorized(handler, user, action, resource) and bool(
                self.hub_auth.check_scopes({needed}, hub_user)
            )
            if len(self._decided) >= KEPT_DECISIONS:
                self._decided.clear()
            self._decided[key] = decided
        return decided
