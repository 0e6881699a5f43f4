"""`CatalogApp`: the catalog service as a jupyter-server extension.

It opens one `Catalog` (configured as `c.Catalog.*`), keeps a thread pool for background trainings,
and registers the REST handlers of `headstart.extension.handlers`. The same extension runs as the
hub's managed service and inside a plain `jupyter lab`.
"""

from __future__ import annotations

import functools
import getpass
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Int, Type, Unicode, default

from headstart.extension.catalog.tables import User
from headstart.extension.handlers import default_handlers
from headstart.extension.manager import Catalog


class CatalogApp(ExtensionApp):
    """The catalog service: one catalog, its training pool and its REST API."""

    name = "headstart"
    load_other_extensions = True

    catalog_class = Type(
        default_value=Catalog,
        klass=Catalog,
        config=True,
        help="The Catalog class the service opens; configure it with `c.Catalog.*` (or the subclass's "
        "name): db_url, store_url, home and the size limits.",
    )
    training_workers = Int(
        1,
        config=True,
        help="Threads that carry out trainings in the background; trainings beyond this wait in line.",
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
        # parent=self hands the catalog the server's config, so `c.Catalog.db_url = ...` applies.
        self.catalog: Catalog = self.catalog_class(parent=self)
        self.trainings = ThreadPoolExecutor(self.training_workers, thread_name_prefix="headstart-training")
        # The service is the only process that runs trainings for its catalog, so a training still
        # marked running at start-up was cut off by the last stop; say so rather than leave it.
        interrupted = self.catalog.trainings.fail_interrupted("the catalog service stopped while it ran")
        if interrupted:
            self.log.warning("headstart: %d trainings were cut off by the last stop", interrupted)
        self.log.info("headstart catalog: database %s, store %s", self.catalog.db_url, self.catalog.store_url)

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)

    def user_name(self, user: Any) -> str:
        """The catalog user name of a request's signed-in jupyter-server user."""
        return self.local_user_name if self.single_user else str(user.username)

    def start_training(self, user: User, training_id: int) -> None:
        """Carry out a recorded training on the training pool; the request does not wait for it."""
        future = self.trainings.submit(self.catalog.trainings.run, user, training_id)
        future.add_done_callback(functools.partial(self._training_done, training_id))

    def _training_done(self, training_id: int, future: Future[Any]) -> None:
        # The manager has recorded the failure on the training; the log keeps the traceback.
        if not future.cancelled() and (error := future.exception()) is not None:
            self.log.error("training %s failed", training_id, exc_info=error)

    async def stop_extension(self) -> None:
        # Running trainings are not waited for: a server stop must not hang on a long training.
        self.trainings.shutdown(wait=False, cancel_futures=True)
        self.catalog.close()
