"""The catalog service: the database, the artifact store, access rules and the jobs that call the engine."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter-server finds the extension; imported late so the CLI never loads the server."""
    from headstart.extension.app import CatalogApp

    return [{"module": "headstart.extension", "app": CatalogApp}]
