"""`Context`: what every `headstart` command needs, set by the global options wherever they are given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Context:
    """The catalog a command talks to (opened on first use), and the output mode.

    With a URL (`--url` or `$HEADSTART_URL`) that is the catalog service, through the REST client;
    without one, the local catalog under `--home`, as the user that `--user` names.
    """

    def __init__(self) -> None:
        self.home: str = os.environ.get("HEADSTART_HOME") or "var"
        self.user_name: str = os.environ.get("HEADSTART_USER") or os.environ.get("USER") or "local"
        self.url: str | None = os.environ.get("HEADSTART_URL") or None
        self.config_file: str | None = None
        self.json = False
        self._api: Any = None

    @property
    def api(self) -> Any:
        """A `HeadstartClient`, or a local `UserSession` that answers the same calls."""
        if self._api is None:
            if self.url:
                from headstart.kernels.client import HeadstartClient

                self._api = HeadstartClient(self.url)
            else:
                from traitlets.config import Config

                from headstart.extension.manager import Catalog

                config = load_config(self.config_file) if self.config_file else Config()
                self._api = Catalog(home=self.home, config=config).session(self.user_name)
        return self._api


def load_config(path: str) -> Any:
    """A traitlets config file, .py or .json (click has checked that it exists)."""
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    file = Path(path)
    loader = JSONFileConfigLoader if file.suffix == ".json" else PyFileConfigLoader
    return loader(file.name, path=str(file.parent)).load_config()
