"""The headstart kernelspec: the environment its launcher sets, and a real kernel started from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headstart.kernels.kernelspec import SPEC_FILE, catalog_url, install, kernel_environment


def test_a_bare_environment_gets_quiet_tensorflow_and_no_guessed_url() -> None:
    assert kernel_environment({}) == {"TF_CPP_MIN_LOG_LEVEL": "2"}


def test_what_is_already_set_is_kept() -> None:
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "0",
        "HEADSTART_URL": "http://catalog.example/",
        "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example/hub/",
    }
    assert kernel_environment(env) == {}


@pytest.mark.parametrize(
    ("env", "url"),
    [
        (
            {"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example/hub/"},
            "https://hub.example/services/headstart/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example/lab/hub/", "JUPYTERHUB_BASE_URL": "/lab/"},
            "https://hub.example/lab/services/headstart/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_URL": "http://127.0.0.1:8000/user/alice/", "JUPYTERHUB_BASE_URL": "/"},
            "http://127.0.0.1:8000/services/headstart/",
        ),
        (
            {"JUPYTERHUB_PUBLIC_URL": "https://hub.example/lab/user/alice/", "JUPYTERHUB_BASE_URL": "/lab/"},
            "https://hub.example/lab/services/headstart/",
        ),
        # No public address: the server's own loopback URL is not the proxy's.
        ({"JUPYTERHUB_PUBLIC_URL": "", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}, None),
    ],
)
def test_the_catalog_url_comes_from_the_hubs_public_url(env: dict[str, str], url: str | None) -> None:
    assert catalog_url(env) == url
    assert kernel_environment({**env, "HEADSTART_URL": ""}).get("HEADSTART_URL") == url


def test_the_spec_runs_the_launcher() -> None:
    spec = json.loads(SPEC_FILE.read_text())
    assert spec["argv"][:3] == ["python", "-m", "headstart.kernels.kernelspec"]
    assert "{connection_file}" in spec["argv"]
    assert spec["display_name"] == "Python 3 (headstart)"


def test_a_kernel_started_from_the_spec_has_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.manager import start_new_kernel

    folder = install(str(tmp_path))
    assert folder == tmp_path / "share" / "jupyter" / "kernels" / "headstart"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("HEADSTART_URL", raising=False)
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_HUB_URL", "http://127.0.0.1:8000/hub/")
    manager, client = start_new_kernel(kernel_name="headstart", startup_timeout=60)
    try:
        seen: list[str] = []
        code = "import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ['HEADSTART_URL'])"
        reply = client.execute_interactive(
            code,
            timeout=30,
            output_hook=lambda msg: seen.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok"
        assert "".join(seen).split() == ["2", "http://127.0.0.1:8000/services/headstart/"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
