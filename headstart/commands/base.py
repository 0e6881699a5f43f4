"""What every `headstart` command shares: the context, the `--json` flag, errors as exit status 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from headstart.output import emit_json, fields, table

EXIT_BAD_INPUT = 2


class Context:
    """What every command needs: the catalog it talks to (opened on first use), and the output mode.

    With a URL (`--url` or `$HEADSTART_URL`) that is the catalog service, through the REST client;
    without one, the local catalog under `--home`, as the user that `--user` names.
    """

    def __init__(self, home: str, user: str, config_file: str | None, url: str | None = None) -> None:
        self.home = home
        self.user_name = user
        self.config_file = config_file
        self.url = url
        self.json = False
        self._api: Any = None

    @property
    def api(self) -> Any:
        """A `HeadstartClient`, or a local `UserSession` that answers the same calls."""
        if self._api is None:
            if self.url:
                from headstart.kernels.client import HeadstartClient

                self._api = HeadstartClient(self.url)
            else:
                from traitlets.config import Config

                from headstart.extension.manager import Catalog

                config = load_config(self.config_file) if self.config_file else Config()
                self._api = Catalog(home=self.home, config=config).session(self.user_name)
        return self._api


def load_config(path: str) -> Any:
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    file = Path(path)
    if not file.is_file():
        raise click.BadParameter(f"no such config file: {path}", param_hint="--config")
    loader = JSONFileConfigLoader if file.suffix == ".json" else PyFileConfigLoader
    return loader(file.name, path=str(file.parent)).load_config()


def command(group: click.Group | None, name: str | None = None, **settings: Any) -> Callable:
    """A command with `--json`, the shared context, and headstart errors turned into exit 2.

    With a group it is that group's subcommand; without, a command for `main` to add.
    """

    def decorate(function: Callable) -> Callable:
        register = click.command if group is None else group.command

        @register(name, **settings)
        @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")
        @click.pass_obj
        @functools.wraps(function)
        def wrapper(ctx: Context, as_json: bool, **kwargs: Any) -> None:
            ctx.json = ctx.json or as_json
            run_reporting_errors(lambda: function(ctx, **kwargs))

        return wrapper

    return decorate


def run_reporting_errors(action: Callable[[], None]) -> None:
    from pydantic import ValidationError

    from headstart.kernels.errors import HeadstartError

    try:
        action()
    except HeadstartError as error:
        click.echo(f"error: {error}", err=True)
        if isinstance(error.detail, list):
            for item in error.detail[:20]:
                click.echo(
                    f"  {item.get('file', '')}: {item.get('reason', item)}"
                    if isinstance(item, dict)
                    else f"  {item}",
                    err=True,
                )
        sys.exit(EXIT_BAD_INPUT)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        click.echo(f"error: {problems}", err=True)
        sys.exit(EXIT_BAD_INPUT)


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
    if value is None:
        return None
