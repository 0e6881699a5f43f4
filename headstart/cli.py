"""The `headstart` command: datasets, models, training, evaluation and leaderboards from a shell.

It works on a local catalog (a folder, `./var` by default) as the user that `--user` names.
Every command takes `--json` for scripts. Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import logging
import os

import click

from headstart.commands.base import Context
from headstart.commands.datasets import datasets
from headstart.commands.demo import demo
from headstart.commands.evaluation import evaluate, leaderboard
from headstart.commands.models import models
from headstart.commands.training import decide, train, trainings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    default=lambda: os.environ.get("HEADSTART_HOME", "var"),
    show_default="var, or $HEADSTART_HOME",
    help="Folder of the local catalog: its database and artifact store.",
)
@click.option(
    "--user",
    default=lambda: os.environ.get("HEADSTART_USER") or os.environ.get("USER") or "local",
    show_default="$HEADSTART_USER or $USER",
    help="Who you are in the local catalog; owns what you create.",
)
@click.option(
    "--url",
    default=lambda: os.environ.get("HEADSTART_URL") or None,
    show_default="$HEADSTART_URL",
    help="The catalog service to use; its token comes from $JUPYTERHUB_API_TOKEN. "
    "Without a URL, the local catalog under --home.",
)
@click.option(
    "--config", "config_file", default=None, help="A traitlets config file (.py or .json) for the Catalog."
)
@click.version_option(package_name="headstart")
@click.pass_context
def main(context: click.Context, home: str, user: str, url: str | None, config_file: str | None) -> None:
    """Create, share, re-train and benchmark Keras image classifiers.

    \b
    Quick start:
      headstart demo                                 # datasets, a training, a leaderboard
      headstart datasets add photos.zip --name pets  # label/image or train/label/image
      headstart models create --name base --architecture mobilenet_v2 --weights none
      headstart train 1 pets --epochs 5 --decision keep_both
      headstart leaderboard pets
    """
    # TensorFlow's start-up chatter and retracing notes are for its developers, not for our users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    context.obj = Context(home, user, config_file, url)


for subcommand in (datasets, models, train, decide, trainings, evaluate, leaderboard, demo):
    main.add_command(subcommand)


if __name__ == "__main__":
    main()
