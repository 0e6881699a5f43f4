"""The `headstart` Jupyter kernel: ipykernel, started with what a headstart notebook needs.

`kernel.json`, which `install` puts in the environment's `share/jupyter/kernels/headstart/` (`make up`
does), runs `python -m headstart.kernels.kernelspec`: it sets the environment that
`kernel_environment` computes, then starts ipykernel in the same process.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

KERNEL_NAME = "headstart"
SPEC_FILE = Path(__file__).resolve().parent / "kernel.json"
SERVICE_PATH = "services/headstart/"


def catalog_url(env: Mapping[str, str]) -> str | None:
    """The catalog service's URL as the hub's proxy serves it, from a hub server's environment.

    The hub's own public URL is best (`JUPYTERHUB_PUBLIC_HUB_URL`, which ends in `hub/`); failing
    that, the server's public URL with the hub's base URL for a path. Without either the kernel
    cannot know the proxy's address, and the result is None.
    """
    hub = env.get("JUPYTERHUB_PUBLIC_HUB_URL")
    if hub:
        parts = urlsplit(hub)
        base = parts.path.rstrip("/").removesuffix("/hub") + "/"
        return urlunsplit((parts.scheme, parts.netloc, base + SERVICE_PATH, "", ""))
    server = env.get("JUPYTERHUB_PUBLIC_URL")
    if server and "://" in server:
        parts = urlsplit(server)
        base = "/" + env.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        base = base.rstrip("/") + "/"
        return urlunsplit((parts.scheme, parts.netloc, base + SERVICE_PATH, "", ""))
    return None


def kernel_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to `env` before the kernel starts; what is already set is kept."""
    changes = {}
    # TensorFlow's C++ start-up notices would fill the first cell that trains or evaluates.
    if "TF_CPP_MIN_LOG_LEVEL" not in env:
        changes["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if not env.get("HEADSTART_URL"):
        url = catalog_url(env)
        if url is not None:
            changes["HEADSTART_URL"] = url
    return changes


def install(prefix: str = sys.prefix) -> Path:
    """Install the kernelspec under `prefix` (like `jupyter kernelspec install --sys-prefix`)."""
    folder = Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SPEC_FILE, folder / "kernel.json")
    return folder


def main() -> None:
    """Set the kernel's environment, then run ipykernel with this process's arguments."""
    import os

    os.environ.update(kernel_environment(os.environ))
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()
