"""Runs the installed `headstart` command in a subprocess, and records the options each run passes.

Every CLI test goes through `headstart(...)`, as a user's shell would: the console script next to
this interpreter, a fresh environment without the user's HEADSTART_* settings, and output checked
as text or through --json. Each run's argv is resolved against the click tree, so that
`untested_options` can name every option that no test has passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

HEADSTART = Path(sys.executable).with_name("headstart")
# The user's own catalog settings must not leak into a test.
CLEARED_ENV = ("HEADSTART_HOME", "HEADSTART_USER", "HEADSTART_URL", "JUPYTERHUB_API_TOKEN")
# What TensorFlow prints on import unless the CLI keeps it off stderr (issue 9, break 6).
TENSORFLOW_NOISE = ("absl::InitializeLog", "oneDNN", "port.cc", "cpu_feature_guard")
TIMEOUT_SECONDS = 600
EXIT_BAD_INPUT = 2

# (command path, option): "(), --home" for a global option, "('models', 'create'), --seed" for one
# of a command's own. Filled by every run of the session.
Key = tuple[tuple[str, ...], str]
EXERCISED: set[Key] = set()


@dataclass(frozen=True)
class Result:
    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> str:
        """The one error line on stderr."""
        return self.stderr.strip()


def headstart(
    *args: object,
    home: Path | str | None = None,
    user: str | None = None,
    code: int | None = 0,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run `headstart *args`, with `--home` and `--user` after the command when given, and check it.

    A run must exit with `code` (any, if None). A failure must say so in one line on stderr; a --json run that
    succeeds must leave stderr empty; no run may show TensorFlow's start-up lines.
    """
    argv = [str(a) for a in args]
    if home is not None:
        argv += ["--home", str(home)]
    if user is not None:
        argv += ["--user", user]
    record(argv)
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    process = subprocess.run(
        [str(HEADSTART), *argv],
        capture_output=True,
        text=True,
        input=stdin,
        env={**environment, **(env or {})},
        cwd=cwd,
        timeout=TIMEOUT_SECONDS,
    )
    result = Result(argv, process.returncode, process.stdout, process.stderr)
    context = (
        f"headstart {' '.join(argv)}\nexit {result.code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert code is None or result.code == code, context
    assert not any(noise in result.stderr for noise in TENSORFLOW_NOISE), context
    if result.code == EXIT_BAD_INPUT:
        assert len(result.stderr.splitlines()) == 1, context
    if result.code == 0 and "--json" in argv:
        assert result.stderr == "", context
    return result


def headstart_many(runs: Iterable[Sequence[object]], **settings: Any) -> list[Result]:
    """Independent runs at once (each is a process of its own); results in the order given."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda args: headstart(*args, **settings), runs))


# --- which options a run passes --------------------------------------------------------------


def option_key(path: tuple[str, ...], option: click.Option, flag: str) -> Key:
    """The key of one spelling of an option: its main long name, or a secondary one (--private)."""
    from headstart.commands.options import GlobalOption

    name = flag if flag in option.secondary_opts else max(option.opts, key=len)
    return ((), name) if isinstance(option, GlobalOption) else (path, name)


def _options(command: click.Command, parent: click.Context | None, name: str) -> list[click.Option]:
    ctx = click.Context(command, info_name=name, parent=parent)
    return [p for p in command.get_params(ctx) if isinstance(p, click.Option)]


def walk_options(root: click.Command, name: str = "headstart") -> Iterator[Key]:
    """Every (command path, option) of the tree under `root`, --help and --version included."""
    yield from _walk(root, (), None, name)


def _walk(
    command: click.Command, path: tuple[str, ...], parent: click.Context | None, name: str
) -> Iterator[Key]:
    ctx = click.Context(command, info_name=name, parent=parent)
    for option in _options(command, parent, name):
        for flag in [max(option.opts, key=len), *option.secondary_opts]:
            yield option_key(path, option, flag)
    for child_name, child in getattr(command, "commands", {}).items():
        yield from _walk(child, (*path, child_name), ctx, child_name)


def passed_options(argv: Sequence[str], root: click.Command | None = None) -> set[Key]:
    """The options that `headstart *argv` passes, each under the command it is given to."""
    if root is None:
        from headstart.cli import main as root
    command, path, parent = root, (), None
    name = "headstart"
    found: set[Key] = set()
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1:
            flag, equals, _ = token.partition("=")
            option = next(
                (o for o in _options(command, parent, name) if flag in o.opts or flag in o.secondary_opts),
                None,
            )
            if option is None:
                continue  # an unknown option: the run tests click's refusal, not an option
            found.add(option_key(path, option, flag))
            if not option.is_flag and not equals:
                i += 1  # its value
            continue
        children = getattr(command, "commands", {})
        if token in children:
            parent = click.Context(command, info_name=name, parent=parent)
            command, path, name = children[token], (*path, token), token
    return found


def record(argv: Sequence[str]) -> None:
    EXERCISED.update(passed_options(argv))


def untested_options(root: click.Command, exercised: set[Key]) -> list[Key]:
    """The options of the tree that no run passed, in the tree's order."""
    return [key for key in dict.fromkeys(walk_options(root)) if key not in exercised]
