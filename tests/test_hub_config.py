"""hub_config/jupyterhub_config.py: the quickstart lands once, on a first spawn; users' servers keep the
catalog extension off."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]


def load_hub_config(tmp_path: Path, monkeypatch) -> tuple[Config, dict[str, Any]]:
    """The hub's config, and the config file's namespace."""
    monkeypatch.setenv("HEADSTART_HOME", str(tmp_path / "hub-home"))
    monkeypatch.setenv("HEADSTART_HUB_PASSWORD", "not used here")
    config = Config()
    # JupyterHub's loader gives a config file get_config(); here it is the test's own Config.
    namespace = runpy.run_path(
        str(REPO / "hub_config" / "jupyterhub_config.py"), {"get_config": lambda: config}
    )
    return config, namespace


def test_the_quickstart_is_copied_on_the_first_spawn_only(tmp_path: Path, monkeypatch) -> None:
    config, namespace = load_hub_config(tmp_path, monkeypatch)
    hook = config.Spawner.pre_spawn_hook
    assert hook is namespace["copy_quickstart"]
    spawner = SimpleNamespace(home_dir=str(tmp_path / "alice"), cmd=config.Spawner.cmd)

    hook(spawner)
    copied = tmp_path / "alice" / "quickstart.ipynb"
    assert copied.read_bytes() == (REPO / "notebooks" / "quickstart.ipynb").read_bytes()

    copied.write_text("my own edits")
    hook(spawner)
    assert copied.read_text() == "my own edits"  # never overwritten
    copied.unlink()
    hook(spawner)
    assert not copied.exists()  # deleted on purpose: it does not come back


def test_the_quickstart_never_writes_through_a_link_the_user_left(tmp_path: Path, monkeypatch) -> None:
    config, _ = load_hub_config(tmp_path, monkeypatch)
    home, elsewhere = tmp_path / "alice", tmp_path / "not-hers.txt"
    home.mkdir()
    elsewhere.write_text("keep")
    (home / "quickstart.ipynb").symlink_to(elsewhere)
    config.Spawner.pre_spawn_hook(SimpleNamespace(home_dir=str(home), cmd=config.Spawner.cmd))
    assert elsewhere.read_text() == "keep"
    assert (home / ".headstart" / "quickstart-copied").exists()


def test_the_services_home_is_its_own(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "hub-home").mkdir(mode=0o755)
    load_hub_config(tmp_path, monkeypatch)
    assert (tmp_path / "hub-home").stat().st_mode & 0o777 == 0o700


def test_users_accounts_are_shared_by_default_and_system_on_request(tmp_path: Path, monkeypatch) -> None:
    config, _ = load_hub_config(tmp_path, monkeypatch)
    assert config.JupyterHub.spawner_class == "simple"
    monkeypatch.setenv("HEADSTART_USER_PYTHON", "/opt/users/bin/python")
    monkeypatch.setenv("HEADSTART_USERS", "system")
    if os.geteuid() == 0:
        config, _ = load_hub_config(tmp_path, monkeypatch)
        assert config.JupyterHub.spawner_class == "localprocess"
        assert config.Spawner.cmd[0] == "/opt/users/bin/python"
    else:
        with pytest.raises(SystemExit, match="run the hub as root"):
            load_hub_config(tmp_path, monkeypatch)
    monkeypatch.setenv("HEADSTART_USERS", "pods")
    with pytest.raises(SystemExit, match="must be shared or system, not 'pods'"):
        load_hub_config(tmp_path, monkeypatch)


def test_users_servers_are_started_with_the_catalog_extension_off(tmp_path: Path, monkeypatch) -> None:
    """The spawner's arguments, as jupyter-server parses them, switch the extension off (the hub test in
    tests/test_wheel.py shows that this wins over a user's own config); the service's do not."""
    config, _ = load_hub_config(tmp_path, monkeypatch)
    users_server = ServerApp()
    users_server.parse_command_line(config.Spawner.args)
    assert users_server.jpserver_extensions == {"headstart.extension": False}
    [service] = [service for service in config.JupyterHub.services if service["name"] == "headstart"]
    assert not any("jpserver_extensions" in arg for arg in service["command"])
