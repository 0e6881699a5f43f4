"""`headstart benchmark`: the transfer benchmark, every body you may see by every dataset."""

from __future__ import annotations

from typing import Any

import click

from headstart.commands.base import Context, command
from headstart.commands.evaluation import echo_per_class
from headstart.output import emit_json, fields, progress_bar, table

# How many hex digits of a body's sha256 the table prints; `--body` takes as few as 6.
SHORT_BODY = 12


def cell_text(cell: Any) -> str:
    """A `BenchmarkCell` as the table prints it: its accuracy, or its state."""
    if cell.state == "scored":
        return "n/a" if cell.accuracy is None else f"{cell.accuracy:.3f}"
    return str(cell.state)


@command(None, "benchmark")
@click.argument("datasets", nargs=-1)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until every cell is computed, or print pending cells as they stand.",
)
@click.option(
    "--body",
    default=None,
    help="Show one cell's per-class figures: a body's sha256 (6 or more of its first digits), "
    "with one DATASET.",
)
def benchmark(ctx: Context, datasets: tuple[str, ...], wait: bool, body: str | None) -> None:
    """Rank every body you can see by how well it transfers to each dataset.

    A body is a model's frozen part (re-trained variants share it, so they are one row). Each cell
    is the test accuracy of the standard linear probe: a logistic regression trained on the body's
    cached features of the dataset's train split. Cells are computed once, as jobs, and kept; rows
    come best mean rank first. Give DATASETS (ids or names) to show only those columns:

      headstart benchmark
      headstart benchmark shapes fashion --no-wait
      headstart benchmark shapes --body 3fa2c81b09d4
    """
    from headstart.kernels.errors import Invalid

    if body is not None:
        if len(datasets) != 1:
            raise Invalid("--body shows one cell: give exactly one DATASET")
        shown = ctx.api.benchmark.cell(body, datasets[0])
        if ctx.json:
            emit_json(shown)
            return
        record = {"body": shown.body, "name": shown.name, **shown.cell.model_dump(), "probe": shown.probe}
        keys = ["body", "name", "dataset", "state", "accuracy", "count", "rank", "note", "probe"]
        click.echo(fields(record, keys))
        echo_per_class(shown.per_class, shown.confusion)
        return
    with progress_bar("benchmark", unit="cell") as update:
        result = ctx.api.benchmark.matrix(list(datasets) or None, wait=wait, progress=update)
    if ctx.json:
        emit_json(result)
        return
    rows = [
        {
            "rank": position,
            "body": row.body[:SHORT_BODY],
            "name": row.name,
            "models": len(row.models),
            "mean_rank": row.mean_rank,
            **{cell.dataset: cell_text(cell) for cell in row.cells},
        }
        for position, row in enumerate(result.rows, start=1)
    ]
    click.echo(table(rows, ["rank", "body", "name", "models", "mean_rank", *result.datasets]))
    if result.pending:
        click.echo(f"{result.pending} cells pending: ask again for their scores")
