"""hub_config/jupyterhub_config.py's pre-spawn hook: the quickstart lands once, on a first spawn."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]


def test_the_quickstart_is_copied_on_the_first_spawn_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEADSTART_HOME", str(tmp_path / "hub-home"))
    monkeypatch.setenv("HEADSTART_HUB_PASSWORD", "not used here")
    config = Config()
    # JupyterHub's loader gives a config file get_config(); here it is the test's own Config.
    namespace = runpy.run_path(
        str(REPO / "hub_config" / "jupyterhub_config.py"), {"get_config": lambda: config}
    )
    hook = config.Spawner.pre_spawn_hook
    assert hook is namespace["copy_quickstart"]
    spawner = SimpleNamespace(home_dir=str(tmp_path / "alice"))

    hook(spawner)
    copied = tmp_path / "alice" / "quickstart.ipynb"
    assert copied.read_bytes() == (REPO / "notebooks" / "quickstart.ipynb").read_bytes()

    copied.write_text("my own edits")
    hook(spawner)
    assert copied.read_text() == "my own edits"  # never overwritten
    copied.unlink()
    hook(spawner)
    assert not copied.exists()  # deleted on purpose: it does not come back
