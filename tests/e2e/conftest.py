"""A real JupyterHub, from hub_config/, behind the real configurable-http-proxy, on loopback ports.

One hub serves the whole session. Its catalog, its database and the proxy's state live in a temporary
`HEADSTART_HOME`. A second config file loads the real one and adds only what a test needs: an admin
service whose token creates the users alice and bob and their API tokens. `running_hub` is shared
with tests/browser, whose hub starts on a seeded catalog.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from headstart.extension.standalone import Hub, serve_hub

REPO = Path(__file__).resolve().parents[2]
HUB_CONFIG = REPO / "hub_config" / "jupyterhub_config.py"
PROXY = "configurable-http-proxy"

# The session hub's catalog refuses model files over this many bytes, so that a test passes the
# limit with a few MiB instead of the default 512; the tests' tiny models are a few kB.
MODEL_LIMIT = 4 * 2**20


def require_proxy() -> None:
    """Skip without configurable-http-proxy, or fail in CI, where .ci/run installs it."""
    if shutil.which(PROXY) is None:
        message = f"{PROXY} is not installed: `npm install -g {PROXY}` (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def service_arguments(*arguments: str) -> str:
    """Config lines for `running_hub` that add command-line arguments to the catalog service."""
    service = "next(s for s in c.JupyterHub.services if s['name'] == 'headstart')"
    return "".join(f"{service}['command'].append({argument!r})\n" for argument in arguments)


def running_hub(home: Path, extra_config: str = "") -> contextlib.AbstractContextManager[Hub]:
    """The hub of hub_config/ with `home` as its HEADSTART_HOME, with alice and bob and their tokens
    (`headstart.extension.standalone.serve_hub`)."""
    return serve_hub(home, HUB_CONFIG, extra_config, users=("alice", "bob"))


@pytest.fixture(scope="session")
def shapes_zip(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The shapes dataset as the bytes of a zip of label folders, as a dataset upload sends it."""
    archive = shutil.make_archive(str(tmp_path_factory.mktemp("zips") / "shapes"), "zip", shapes_folder)
    return Path(archive).read_bytes()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_proxy()
    limits = service_arguments(f"--Catalog.max_model_bytes={MODEL_LIMIT}")
    with running_hub(tmp_path_factory.mktemp("hub"), limits) as running:
        yield running
