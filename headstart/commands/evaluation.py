"""`headstart evaluate` and `leaderboard`: scores computed by the platform, cached per version."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.commands.base import Context, command, show
from headstart.output import emit_json, progress_bar, table


@command(None, "evaluate")
@click.argument("model_id", type=int)
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help="Score on this dataset's split instead of image files.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--version", type=int, default=None, help="A version other than the current one.")
@click.option("--top-k", type=int, default=3, show_default=True)
def evaluate(
    ctx: Context,
    model_id: int,
    images: tuple[Path, ...],
    dataset: str | None,
    split: str,
    version: int | None,
    top_k: int,
) -> None:
    """Score a model on a dataset split, or predict labels for image files."""
    from headstart.kernels.errors import Invalid

    if top_k < 1:
        raise Invalid("--top-k must be at least 1")
    if (dataset is None) == (not images):
        raise Invalid("give either --dataset or image files, not both or neither")
    if dataset is not None:
        with progress_bar(f"evaluate model {model_id}"):
            evaluation = ctx.api.evaluations.on_split(model_id, dataset, split, version=version, top_k=top_k)
        if ctx.json:
            emit_json(evaluation)
            return
        result = evaluation.result
        show(
            ctx,
            evaluation,
            ["model_id", "model_version", "dataset_id", "split", "comparable", "accuracy", "loss", "count"],
        )
        if result.get("note"):
            click.echo(f"note: {result['note']}")
        echo_per_class(result.get("per_class", []), result.get("confusion", []))
        return
    with progress_bar(f"predict with model {model_id}", total=len(images), unit="img") as update:
        result = ctx.api.evaluations.on_files(
            model_id, list(images), version=version, top_k=top_k, progress=update
        )
    if ctx.json:
        emit_json(result)
        return
    click.echo(predictions_table(result["predictions"]))


def echo_per_class(per_class: list[dict], confusion: list[list[int]]) -> None:
    """Precision, recall and support per label, then the confusion matrix, as `evaluate` prints them."""
    if per_class:
        click.echo("")
        click.echo(table(per_class, ["label", "precision", "recall", "support"]))
    if confusion:
        click.echo("\nconfusion (rows: true, columns: predicted):")
        for label, row in zip([c["label"] for c in per_class], confusion, strict=False):
            click.echo(f"  {label:>12}  " + " ".join(f"{v:>5}" for v in row))


def predictions_table(predictions: list[dict], top: str = "top") -> str:
    """Predictions on files as a table: each file (or index) and its top labels with probabilities."""
    rows = [
        {
            "file": p.get("file", p.get("index")),
            top: ", ".join(f"{t['label']} {t['probability']:.3f}" for t in p["top"]),
        }
        for p in predictions
    ]
    return table(rows, ["file", top])


# A leaderboard's columns as `headstart leaderboard` prints them; `headstart demo` prints the same.
LEADERBOARD_COLUMNS = [
    "rank",
    "model_id",
    "model_name",
    "owner",
    "version",
    "accuracy",
    "loss",
    "count",
    "comparable",
]


@command(None, "leaderboard")
@click.argument("dataset")
def leaderboard(ctx: Context, dataset: str) -> None:
    """Rank every model you can see on a dataset's test split (scores are cached per version)."""
    with progress_bar(f"leaderboard {dataset}", unit="model") as update:
        rows = ctx.api.evaluations.leaderboard(dataset, progress=update)
    show(
        ctx,
        rows,
        columns=LEADERBOARD_COLUMNS,
    )
