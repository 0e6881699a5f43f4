"""`headstart sweep` and `sweeps`: many heads of one model, trained side by side on cached features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from headstart.commands.base import Context, command
from headstart.commands.training import Patience, default, shown
from headstart.kernels.schemas import LOSSES, OPTIMIZERS, SweepGrid, SweepPublic, TrainingConfig
from headstart.output import emit_json, progress_bar, table

RUN_COLUMNS = [
    "rank",
    "training",
    "learning_rate",
    "epochs",
    "optimizer",
    "batch_size",
    "label_smoothing",
    "ran",
    "val_accuracy",
    "status",
]


class Values(click.ParamType):
    """A comma-separated list of values of one type: `1e-3,1e-2`."""

    def __init__(self, kind: Callable[[str], Any], name: str) -> None:
        self.kind = kind
        self.name = name

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> list:
        if isinstance(value, list):
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not all(items):
            self.fail(f"{value!r} has a blank value; separate values with single commas", param, ctx)
        try:
            return [self.kind(item) for item in items]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.name}", param, ctx)


def _optimizer(name: str) -> str:
    if name.lower() not in OPTIMIZERS:
        raise ValueError(name)
    return name.lower()


def run_rows(sweep: SweepPublic) -> list[dict]:
    """The sweep's runs as table rows, best val accuracy first."""
    return [
        {
            "rank": rank,
            "training": run.id,
            **{axis: run.config.get(axis) for axis in SweepGrid.model_fields},
            "ran": len(run.epochs),
            "val_accuracy": run.val_accuracy,
            "status": run.status,
        }
        for rank, run in enumerate(sweep.runs, start=1)
    ]


def show_sweep(ctx: Context, sweep: SweepPublic) -> None:
    if ctx.json:
        emit_json(sweep)
        return
    state = sweep.job.state if sweep.job else "?"
    click.echo(
        f"sweep {sweep.id}: model {sweep.model_id} v{sweep.model_version} on dataset {sweep.dataset_id}, "
        f"{len(sweep.runs)} heads, job {state}"
    )
    click.echo(table(run_rows(sweep), RUN_COLUMNS))
    waiting = [run.id for run in sweep.runs if run.status == "candidate"]
    if waiting:
        click.echo(
            f"\n{len(waiting)} candidates waiting: keep the best with `headstart decide {waiting[0]} "
            "keep_both` (or update), and discard the rest with `headstart decide ID discard`"
        )


@command(None, "sweep")
@click.argument("model_id", type=int)
@click.argument("dataset")
@click.option("--learning-rate", type=Values(float, "numbers"), help="Learning rates to try: 1e-3,1e-2.")
@click.option("--epochs", type=Values(int, "whole numbers"), help="Epoch counts to try: 10,30.")
@click.option(
    "--optimizer",
    type=Values(_optimizer, "optimizers"),
    help=f"Optimizers to try, of {', '.join(OPTIMIZERS)}.",
)
@click.option("--batch-size", type=Values(int, "whole numbers"), help="Batch sizes to try: 16,64.")
@click.option("--label-smoothing", type=Values(float, "numbers"), help="Label smoothings to try: 0,0.1.")
@click.option(
    "--draws",
    type=click.IntRange(min=1),
    default=None,
    help="Train this many combinations, drawn at random; without it, every combination trains.",
)
@click.option("--loss", default=default("loss"), show_default=True, help=f"{' or '.join(LOSSES)}.")
@click.option(
    "--early-stopping",
    type=Patience(),
    default=shown(default("early_stopping_patience")),
    show_default=True,
    help="Stop a head after this many epochs without a better val loss, keeping its best epoch's "
    "weights; 'off' runs every epoch.",
)
@click.option("--seed", type=int, default=default("seed"), show_default=True, help="Seeds the draws too.")
def sweep(
    ctx: Context,
    model_id: int,
    dataset: str,
    learning_rate: list[float] | None,
    epochs: list[int] | None,
    optimizer: list[str] | None,
    batch_size: list[int] | None,
    label_smoothing: list[float] | None,
    draws: int | None,
    loss: str,
    early_stopping: int | None,
    seed: int,
) -> None:
    """Train many heads of a model on a dataset at once, and rank them by val accuracy.

    Give comma-separated values for any of --learning-rate, --epochs, --optimizer, --batch-size and
    --label-smoothing: every combination trains (or --draws of them, picked at random), each on the
    body's cached features, side by side in one job. A setting not swept takes `headstart train`'s
    default. Each head is a training whose candidate waits for your decision:

      headstart sweep 3 flowers --learning-rate 1e-3,3e-3,1e-2 --label-smoothing 0,0.1
      headstart decide 12 keep_both --name flowers-best
    """
    grid = SweepGrid(
        learning_rate=learning_rate,
        epochs=epochs,
        optimizer=optimizer,
        batch_size=batch_size,
        label_smoothing=label_smoothing,
    )
    config = TrainingConfig(loss=loss, early_stopping_patience=early_stopping, seed=seed)
    with progress_bar(f"sweep model {model_id}") as update:

        def progress(phase: str | None, done: int, total: int) -> None:
            update(done, total=total, phase=phase)

        done = ctx.api.sweeps.start(model_id, dataset, grid, draws=draws, config=config, progress=progress)
    show_sweep(ctx, done)


@command(None, "sweeps")
@click.argument("sweep_id", type=int, required=False)
def sweeps(ctx: Context, sweep_id: int | None) -> None:
    """List your sweeps, or show one with its runs ranked by val accuracy."""
    if sweep_id is not None:
        show_sweep(ctx, ctx.api.sweeps.get(sweep_id))
        return
    rows = ctx.api.sweeps.list()
    if ctx.json:
        emit_json(rows)
        return
    plain = [
        {
            "id": s.id,
            "model": f"{s.model_id} v{s.model_version}",
            "dataset": s.dataset_id,
            "heads": len(s.runs),
            "job": s.job.state if s.job else None,
            "best_val_accuracy": s.runs[0].val_accuracy if s.runs else None,
        }
        for s in rows
    ]
    click.echo(table(plain, ["id", "model", "dataset", "heads", "job", "best_val_accuracy"]))
