"""`headstart datasets`: add, list and show datasets."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.commands.base import Context, command, show
from headstart.commands.options import HeadstartGroup
from headstart.output import progress_bar


@click.group(cls=HeadstartGroup)
def datasets() -> None:
    """Add, list and show datasets. Datasets are public and are never deleted.

    \b
    Examples:
      headstart datasets add photos.zip --name pets      # cat/1.jpg, dog/2.png, ...
      headstart datasets add folder/ --name pets2 --skip-invalid --resize-policy pad
      headstart datasets list
      headstart datasets show pets --json
    """


DATASET_KEYS = ["id", "name", "labels", "counts", "resize_policy", "split_policy", "created_by", "created_at"]


@command(datasets, "add")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="A unique name for the dataset.")
@click.option("--description", default="", help="What the images are.")
@click.option(
    "--skip-invalid", is_flag=True, help="Skip unreadable images (they are recorded) instead of failing."
)
@click.option(
    "--resize-policy",
    type=click.Choice(["center_crop", "stretch", "pad"]),
    default=None,
    help="How images become 224x224 (default: center_crop).",
)
def datasets_add(
    ctx: Context, source: Path, name: str, description: str, skip_invalid: bool, resize_policy: str | None
) -> None:
    """Ingest a zip file or folder of label/image files, optionally under train/ val/ test/."""
    with progress_bar(f"ingest {source.name}", unit="img") as update:
        dataset = ctx.api.datasets.add(
            source,
            name=name,
            description=description,
            skip_invalid=skip_invalid,
            resize_policy=resize_policy,
            progress=update,
        )
    show(ctx, dataset, DATASET_KEYS + (["skipped"] if dataset.skipped else []))


@command(datasets, "list")
def datasets_list(ctx: Context) -> None:
    """List every dataset."""
    show(ctx, ctx.api.datasets.list(), columns=["id", "name", "labels", "counts", "created_by"])


@command(datasets, "show")
@click.argument("dataset")
def datasets_show(ctx: Context, dataset: str) -> None:
    """Show a dataset, by id or name."""
    show(ctx, ctx.api.datasets.get(dataset), [*DATASET_KEYS, "description", "skipped"])


@command(datasets, "delete")
@click.argument("dataset")
def datasets_delete(ctx: Context, dataset: str) -> None:
    """Refused: datasets are permanent, so every result on them stays comparable."""
    ctx.api.datasets.delete(dataset)
