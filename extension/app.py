"""`CatalogApp`: the catalog service as a jupyter-server extension.

It opens one `Catalog` (configured as `c.Catalog.*`), whose jobs run on a Dask cluster (a
`DaskRunner`, configured as `c.JobRunner.*`) unless `c.Catalog.runner_class` says otherwise, and
registers the REST handlers of `headstart.extension.handlers`, all under `headstart/`. The same
extension runs as the hub's managed service and inside a plain `jupyter lab`, and only where its
operator enables it: installing headstart turns it on nowhere, so users' servers under the hub never
open a catalog.
"""

from __future__ import annotations

import getpass
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Int, Type, Unicode, default

from headstart.extension.handlers import default_handlers
from headstart.extension.jobs.dask_runner import DaskRunner
from headstart.extension.manager import Catalog
from headstart.extension.managers import heap


class CatalogApp(ExtensionApp):
    """The catalog service: one catalog, its job runner and its REST API."""

    name = "headstart"
    load_other_extensions = True

    catalog_class = Type(
        default_value=Catalog,
        klass=Catalog,
        config=True,
        help="The Catalog class the service opens; configure it with `c.Catalog.*` (or the subclass's "
        "name): db_url, store_url, home and the size limits.",
    )
    max_prediction_bytes = Int(
        64 * 1024 * 1024,
        config=True,
        help="Largest total size, in bytes, of the images of one prediction request.",
    )
    single_user = Bool(
        config=True,
        help="Whether every signed-in request is the one local user (`local_user_name`), as in a "
        "plain jupyter lab, whose token proves the person but names nobody. Defaults to true with "
        "jupyter-server's own identity providers and false with any other, such as JupyterHub's, "
        "whose user names then own the catalog's models.",
    )
    local_user_name = Unicode(
        config=True, help="The catalog user of a single-user server; defaults to the operating-system user."
    )

    @default("single_user")
    def _default_single_user(self) -> bool:
        provider = self.serverapp.identity_provider if self.serverapp else None
        return type(provider) in (IdentityProvider, PasswordIdentityProvider)

    @default("local_user_name")
    def _default_local_user_name(self) -> str:
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no login name and no password entry, as in some containers
            return "local"

    def initialize_settings(self) -> None:
        # parent=self hands the catalog the server's config, so `c.Catalog.db_url = ...` applies. The
        # service's jobs run on its Dask cluster (`c.JobRunner.*`, started on first use), never in
        # the server's own process, unless the operator chose a runner.
        chosen = "runner_class" in self.config.get(self.catalog_class.__name__, {})
        self.catalog: Catalog = self.catalog_class(
            parent=self, **({} if chosen else {"runner_class": DaskRunner})
        )
        # Jobs the cluster still runs are followed again; the ones it lost end as failed.
        attached, lost = self.catalog.jobs.reattach()
        if attached or lost:
            self.log.warning("headstart: %d jobs re-attached, %d lost on restart", attached, lost)
        self.log.info("headstart catalog: database %s, store %s", self.catalog.db_url, self.catalog.store_url)
        heap.serve()  # the server's and the catalog's imports and settings, kept for the process's life

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)

    def user_name(self, user: Any) -> str:
        """The catalog user name of a request's signed-in jupyter-server user."""
        return self.local_user_name if self.single_user else str(user.username)

    async def stop_extension(self) -> None:
        # Jobs are not waited for: on a cluster of our own they stop with it, and on a scheduler
        # given by address they run on, published, for the next start to re-attach.
        self.catalog.close()
