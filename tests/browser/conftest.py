"""Chromium, driven by Playwright, against the hub of hub_config/ on a seeded demo catalog.

The hub is tests/e2e's (`running_hub`), started on a HEADSTART_HOME that already holds a small demo
catalog (`headstart demo`, shrunk) and with the `headstart` kernelspec installed, as `make up` does.
Screenshots of every step go to build/screenshots/browser/, which the run prints at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Hub, require_proxy, running_hub

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = REPO / "build" / "screenshots" / "browser"
SEED_SECONDS = 240

# JupyterLab settings of each test user: every cell in the page (no windowing, so that the test sees
# cells below the fold), and no question about fetching Jupyter's news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def seed_demo(home: Path) -> None:
    """The demo catalog of `make up`, made small: the same datasets and models, fewer images and epochs."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HEADSTART_URL", None)  # the CLI would use the service instead of the folder
    command = [sys.executable, "-m", "headstart", "--home", str(home), "--user", "demo", "demo"]
    small = ["--per-class", "6", "--test-per-class", "3", "--epochs", "2"]
    done = subprocess.run(
        command + small, env=env, capture_output=True, text=True, timeout=SEED_SECONDS, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"seeding the demo catalog failed:\n{done.stdout}\n{done.stderr}")


def write_lab_settings(home: Path, users: list[str]) -> None:
    for user in users:
        settings = home / "hub" / "users" / user / ".jupyter" / "lab" / "user-settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))


# Package scope: the hub and Playwright end with tests/browser. Playwright's sync API runs an event
# loop in this thread while it is open, which later tests' asyncio.run() would find running.
@pytest.fixture(scope="package")
def demo_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The hub as `make up` runs it: the demo catalog seeded and the headstart kernel installed."""
    require_proxy()
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    from headstart.kernels.kernelspec import install

    home = tmp_path_factory.mktemp("browser-hub")
    seed_demo(home)
    install()  # into this environment, which users' servers run from: what `make up` does
    write_lab_settings(home, ["alice", "bob"])
    with running_hub(home) as hub:
        yield hub


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: `pip install -e .[test]`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """A fresh build/screenshots/browser/ for this run's pictures."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    pictures = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.exists() else []
    if pictures:
        terminalreporter.write_sep("-", f"browser screenshots: {SCREENSHOTS}")
        for picture in pictures:
            terminalreporter.write_line(f"  {picture.name}")
