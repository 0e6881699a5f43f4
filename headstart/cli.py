"""The `headstart` command: datasets, models, training, evaluation and leaderboards from a shell.

It works on a local catalog (a folder, `./var` by default) as the user that `--user` names, or on a
catalog service with `--url`. The global options go before or after any command. Every command
takes `--json` for scripts. Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click

from headstart.commands.benchmark import benchmark
from headstart.commands.context import Context
from headstart.commands.datasets import datasets
from headstart.commands.demo import demo
from headstart.commands.errors import EXIT_BAD_INPUT, report
from headstart.commands.evaluation import evaluate, leaderboard
from headstart.commands.models import models
from headstart.commands.options import HeadstartGroup, add_global_options
from headstart.commands.sweeps import sweep, sweeps
from headstart.commands.training import decide, train, trainings


class HeadstartCLI(HeadstartGroup):
    """The root group: click's own errors (a missing option, a bad value) are one line, too."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **settings: Any,
    ) -> Any:
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(args, prog_name, standalone_mode=False, **settings)
        argv = list(sys.argv[1:] if args is None else args)
        options = argv[: argv.index("--")] if "--" in argv else argv
        try:
            code = super().main(argv, prog_name, standalone_mode=False, **settings)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except click.exceptions.NoArgsIsHelpError as error:
            # A bare group (`headstart models`) asks what it can do: its help answers, not an error.
            click.echo(error.format_message())
            sys.exit(0)
        except click.ClickException as error:
            message = error.format_message()
            where = getattr(error, "ctx", None)
            if isinstance(error, click.UsageError) and where is not None:
                message += f" (see '{where.command_path} --help')"
            report(
                "usage" if isinstance(error, click.UsageError) else "invalid",
                message,
                as_json="--json" in options,
            )
            sys.exit(EXIT_BAD_INPUT if isinstance(error, click.UsageError) else error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=HeadstartCLI, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="headstart")
@click.pass_context
def main(context: click.Context) -> None:
    """Create, share, re-train and benchmark Keras image classifiers.

    \b
    Quick start:
      headstart demo                                 # pretrained vs random body on Fashion-MNIST, ranked
      headstart datasets add photos.zip --name pets  # label/image or train/label/image
      headstart models create --name base --architecture efficientnet_lite0 --labels cat,dog
      headstart train 1 pets --epochs 5 --decision keep_both
      headstart sweep 1 pets --learning-rate 1e-3,1e-2 --label-smoothing 0,0.1
      headstart leaderboard pets
      headstart benchmark                            # every body by every dataset, linear probes
      headstart models list --json --home ~/catalog  # global options go anywhere

    \b
    Output and errors:
      Results go to stdout: text for people, JSON with --json. Progress bars go to stderr
      on a terminal only. Bad input exits with status 2 and one line on stderr:
        error: <what is wrong>
      or, with --json, one JSON object, the catalog service's own error body:
        {"error": "invalid", "detail": "<what is wrong>", "items": [<each offending file>]}
    """
    # TensorFlow's start-up chatter and retracing notes are for its developers, not for our users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from headstart.tensorflow_startup import quiet_first_import

    quiet_first_import()
    context.ensure_object(Context)


for subcommand in (
    datasets,
    models,
    train,
    sweep,
    decide,
    trainings,
    sweeps,
    evaluate,
    leaderboard,
    benchmark,
    demo,
):
    main.add_command(subcommand)


def _tree(command: click.Command) -> Iterator[click.Command]:
    yield command
    for child in getattr(command, "commands", {}).values():
        yield from _tree(child)


for _command in _tree(main):
    add_global_options(_command)


if __name__ == "__main__":
    main()
