"""jupyter-server config of the catalog service that the hub starts as its managed service `headstart`.

`jupyterhub.singleuser` has already set the identity provider (JupyterHub's: the hub's user names
own models), the port and the URL prefix from the hub's environment. This file adds the catalog.
"""

from __future__ import annotations

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by the config loader)

HOME = Path(os.environ.get("HEADSTART_HOME", "var")).resolve()

c.ServerApp.jpserver_extensions = {"headstart.extension": True}
# Kernels, terminals and file writes are refused to everyone; catalog requests need hub scopes.
c.ServerApp.authorizer_class = "headstart.extension.authz.CatalogAuthorizer"
# The service serves only what it writes itself (the read-only model notebooks), never a user's files.
c.ServerApp.root_dir = str(HOME / "notebooks")
(HOME / "notebooks").mkdir(parents=True, exist_ok=True)
c.ServerApp.terminals_enabled = False

# The same catalog that `headstart --home var demo` seeds: a SQLite file and the local store.
c.Catalog.home = str(HOME)
c.Catalog.db_url = f"sqlite:///{HOME / 'catalog.sqlite'}"
c.Catalog.store_url = str(HOME / "store")
