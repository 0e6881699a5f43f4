"""What every `headstart` command shares: the command decorator, printing, and parsing `--labels`."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import click

from headstart.commands.context import Context
from headstart.commands.errors import run_reporting_errors
from headstart.commands.options import HeadstartCommand
from headstart.output import emit_json, fields, table

__all__ = ["Context", "command", "show", "split_labels"]


def command(group: click.Group | None, name: str | None = None, **settings: Any) -> Callable:
    """A command that gets the shared context, with headstart's errors turned into one line and exit 2.

    With a group it is that group's subcommand; without, a command for `main` to add. The global
    options, --json among them, are added to every command by `cli.py`.
    """

    def decorate(function: Callable) -> Callable:
        register = click.command if group is None else group.command

        @register(name, cls=HeadstartCommand, **settings)
        @click.pass_obj
        @functools.wraps(function)
        def wrapper(ctx: Context, **kwargs: Any) -> None:
            run_reporting_errors(lambda: function(ctx, **kwargs), as_json=lambda: ctx.json)

        return wrapper

    return decorate


def show(ctx: Context, value: Any, keys: list[str] | None = None, columns: list[str] | None = None) -> None:
    """Print one record (keys) or a list (columns), or JSON."""
    from headstart.output import to_plain

    if ctx.json:
        emit_json(value)
    elif columns is not None:
        click.echo(table(to_plain(value), columns))
    else:
        click.echo(fields(to_plain(value), keys or list(to_plain(value))))


def split_labels(value: str | None) -> list[str] | None:
    """`--labels cat,dog` as ["cat", "dog"]; None when the option is not given.

    Blank labels and repeated ones are refused here, before anything is built or sent.
    """
    from headstart.kernels.errors import Invalid

    if value is None:
        return None
    labels = [label.strip() for label in value.split(",")]
    if not any(labels):
        raise Invalid(f"--labels needs comma-separated labels, such as cat,dog; got {value!r}")
    if not all(labels):
        raise Invalid(f"--labels has a blank label in {value!r}; separate labels with single commas")
    repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
    if repeated:
        raise Invalid(f"--labels must not repeat a label; repeated: {', '.join(repeated)}")
    return labels
