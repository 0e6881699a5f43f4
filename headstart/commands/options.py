"""The global options (--home, --user, --url, --config, --json), defined once, taken anywhere.

`headstart --json datasets list` and `headstart datasets list --json` mean the same: `cli.py` gives
every group and command of the tree these options, built from the one table below. Each one sets
its field of the shared `Context` when it is given, so the last one given wins, and the help of
every command lists them apart from its own options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from headstart.commands.context import Context

GLOBAL_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--home",
        "home",
        {
            "metavar": "FOLDER",
            "show_default": "var, or $HEADSTART_HOME",
            "help": "Folder of the local catalog: its database and artifact store.",
        },
    ),
    (
        "--user",
        "user_name",
        {
            "metavar": "NAME",
            "show_default": "$HEADSTART_USER or $USER",
            "help": "Who you are in the local catalog; owns what you create.",
        },
    ),
    (
        "--url",
        "url",
        {
            "metavar": "URL",
            "show_default": "$HEADSTART_URL",
            "help": "The catalog service to use; its token comes from $JUPYTERHUB_API_TOKEN. "
            "Without a URL, the local catalog under --home.",
        },
    ),
    (
        "--config",
        "config_file",
        {
            "type": click.Path(exists=True, dir_okay=False),
            "help": "A traitlets config file (.py or .json) for the local Catalog, such as its limits.",
        },
    ),
    (
        "--json",
        "json",
        {
            "is_flag": True,
            "help": "Print JSON for scripts instead of text; an error is then one JSON object on stderr.",
        },
    ),
)


class GlobalOption(click.Option):
    """An option of the whole command line, listed under "Global options" in every help."""


def _setter(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        # Absent here (None, or a flag left off) leaves what an outer level or the environment set.
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Context), field, value)

    return store


def add_global_options(command: click.Command) -> None:
    """Give `command` every global option, as fresh parameters that set the shared Context."""
    for flag, field, settings in GLOBAL_OPTIONS:
        command.params.append(
            GlobalOption([flag], expose_value=False, callback=_setter(field), default=None, **settings)
        )


class SectionedHelp(click.Command):
    """A command whose help lists its own options first, then the global ones."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own: list[tuple[str, str]] = []
        shared: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (shared if isinstance(param, GlobalOption) else own).append(record)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Global options (before or after the command)"):
                formatter.write_dl(shared)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)


class HeadstartCommand(SectionedHelp):
    """A `headstart` command."""


class HeadstartGroup(SectionedHelp, click.Group):
    """A `headstart` group: its commands are HeadstartCommands, its groups HeadstartGroups."""

    command_class = HeadstartCommand
    group_class = type
