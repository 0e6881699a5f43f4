"""Help that teaches, the version, and the global options given anywhere on the command line."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import click

from tests.cli.harness import headstart, headstart_many


def commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    for name, child in getattr(command, "commands", {}).items():
        found += commands(child, (*path, name))
    return found


def test_every_command_has_help_that_lists_its_options_and_the_global_ones() -> None:
    from headstart.cli import main

    tree = commands(main)
    answers = headstart_many([[*path, "--help"] for path, _ in tree])
    for (path, command), answer in zip(tree, answers, strict=True):
        text = answer.stdout
        assert text.startswith(f"Usage: headstart {' '.join(path)}".rstrip()), text
        for param in command.params:
            if isinstance(param, click.Option):
                assert max(param.opts, key=len) in text, (path, param.opts)
        assert "Global options (before or after the command):" in text
        for flag in ("--home", "--user", "--url", "--config", "--json"):
            assert flag in text
        if isinstance(command, click.Group):
            assert all(name in text for name in command.commands)
            assert "Examples:" in text or "Quick start:" in text, path
    root = answers[0].stdout
    assert '{"error": "invalid", "detail":' in root and "status 2" in root
    assert headstart("-h").stdout == root


def test_version_and_a_bare_group() -> None:
    assert headstart("--version").stdout.strip().endswith(version("headstart"))
    bare = headstart("models")
    assert bare.stdout == headstart("models", "--help").stdout and "Examples:" in bare.stdout


def test_global_options_work_before_and_after_the_command(tmp_path: Path, shapes_folder: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    added = headstart(
        "datasets", "add", shapes_folder, "--name", "shapes", "--json", "--home", home, "--user", "bob"
    )
    assert added.json["created_by"] == "bob"
    runs = [
        ["--json", "--home", home, "datasets", "list"],
        ["datasets", "list", "--json", "--home", home],
        ["datasets", "--home", home, "--json", "list"],
        ["--home", other, "datasets", "list", "--home", home, "--json"],  # the last one given wins
    ]
    for answer in headstart_many(runs):
        assert [d["name"] for d in answer.json] == ["shapes"], answer.argv
    assert headstart("datasets", "list", "--json", "--home", other).json == []
    # Without --home and --user, the environment's catalog and user; an option still beats them.
    env = {"HEADSTART_HOME": str(home), "HEADSTART_USER": "carol"}
    assert [d["name"] for d in headstart("--json", "datasets", "list", env=env).json] == ["shapes"]
    assert headstart("--json", "datasets", "list", "--home", other, env=env).json == []
    text = headstart("datasets", "show", "shapes", env=env, cwd=tmp_path).stdout
    assert "bob" in text and not text.lstrip().startswith("{")


def test_a_config_file_after_the_command_sets_the_catalogs_limits(
    tmp_path: Path, shapes_folder: Path
) -> None:
    home = tmp_path / "home"
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"Catalog": {"max_files": 5}}))
    python = tmp_path / "limits.py"
    python.write_text("c.Catalog.max_files = 5\n")
    for config in (limits, python):
        refused = headstart(
            "datasets", "add", shapes_folder, "--name", "s", "--config", config, home=home, code=2
        )
        assert refused.error == "error: upload holds more than 5 files, the limit"
    assert headstart("datasets", "list", "--json", home=home).json == []
    missing = headstart("datasets", "list", "--config", tmp_path / "nope.json", home=home, code=2)
    assert "nope.json" in missing.error and "does not exist" in missing.error
