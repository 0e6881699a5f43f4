"""`headstart train`, `decide` and `trainings`: transfer learning and the decision on its result."""

from __future__ import annotations

from typing import Any

import click

from headstart.commands.base import Context, command, show
from headstart.kernels.schemas import LOSSES, OPTIMIZERS, TrainingConfig
from headstart.output import emit_json, progress_bar, table

TRAINING_KEYS = [
    "id",
    "model_id",
    "model_version",
    "dataset_id",
    "status",
    "head",
    "feature_cache",
    "result_model_id",
    "result_version",
    "error",
]


class FineTuneLayers(click.ParamType):
    """A number of body layers to unfreeze, or `all`."""

    name = "N|all"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int):
            return value
        if value == "all":
            return "all"
        try:
            return int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of layers, or 'all'", param, ctx)


class Patience(click.ParamType):
    """A number of epochs without a better val loss before stopping, or `off`."""

    name = "N|off"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int):
            return value
        if value == "off":
            return None
        try:
            return int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a number of epochs, or 'off'", param, ctx)


def default(field: str) -> Any:
    """TrainingConfig's default for a field: the one definition that the CLI, API and widgets share."""
    return TrainingConfig.model_fields[field].default


def shown(value: object) -> str:
    return "off" if value is None else str(value)


@command(None, "train")
@click.argument("model_id", type=int)
@click.argument("dataset")
@click.option(
    "--epochs", type=int, default=default("epochs"), show_default=True, help="The most epochs to run."
)
@click.option("--batch-size", type=int, default=default("batch_size"), show_default=True)
@click.option("--learning-rate", type=float, default=default("learning_rate"), show_default=True)
@click.option(
    "--optimizer", default=default("optimizer"), show_default=True, help=f"{', '.join(OPTIMIZERS)}."
)
@click.option("--loss", default=default("loss"), show_default=True, help=f"{' or '.join(LOSSES)}.")
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=default("label_smoothing"),
    show_default=True,
    help="Share of each target spread evenly over all labels.",
)
@click.option(
    "--fine-tune-layers",
    type=FineTuneLayers(),
    default=str(default("fine_tune_layers")),
    show_default=True,
    help="Body layers to unfreeze from the end, or 'all'. 0 trains only the head, on cached features.",
)
@click.option(
    "--early-stopping",
    type=Patience(),
    default=shown(default("early_stopping_patience")),
    show_default=True,
    help="Stop after this many epochs without a better val loss, keeping the best epoch's weights; "
    "'off' runs every epoch.",
)
@click.option("--seed", type=int, default=default("seed"), show_default=True)
@click.option(
    "--decision",
    type=click.Choice(["update", "keep_both", "discard"]),
    default=None,
    help="What to do with the result at once; without it, the result waits as a candidate.",
)
@click.option("--name", default=None, help="Name of the new model, for keep_both.")
def train(
    ctx: Context,
    model_id: int,
    dataset: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    optimizer: str,
    loss: str,
    label_smoothing: float,
    fine_tune_layers: int | str,
    early_stopping: int | None,
    seed: int,
    decision: str | None,
    name: str | None,
) -> None:
    """Re-train a copy of a model on a dataset by transfer learning.

    The head is kept when the model's labels are the dataset's, and replaced by a fresh softmax
    otherwise. The body stays frozen unless --fine-tune-layers says otherwise. The original model
    never changes: the result is a candidate until you decide (here with --decision, or later with
    `headstart decide`).
    """
    config = TrainingConfig(
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        label_smoothing=label_smoothing,
        epochs=epochs,
        batch_size=batch_size,
        fine_tune_layers=fine_tune_layers,
        early_stopping_patience=early_stopping,
        seed=seed,
    )
    with (
        progress_bar("body features, once per body and dataset", unit="img") as features,
        progress_bar(f"train model {model_id}", total=epochs, unit="epoch") as update,
    ):

        def on_epoch(epoch: dict) -> None:
            update(epoch["epoch"], loss=epoch["loss"], acc=epoch["accuracy"], val_acc=epoch["val_accuracy"])
            if not ctx.json:
                click.echo(
                    f"epoch {epoch['epoch']:>3}  loss {epoch['loss']:.4f}  acc {epoch['accuracy']:.4f}  "
                    f"val_loss {_num(epoch['val_loss'])}  val_acc {_num(epoch['val_accuracy'])}",
                    err=True,
                )

        training = ctx.api.trainings.start(model_id, dataset, config, on_epoch=on_epoch, on_features=features)
    result = None
    if decision is not None:
        result = ctx.api.trainings.decide(training.id, decision, name=name)
        training = ctx.api.trainings.get(training.id)
    if ctx.json:
        emit_json({"training": training, "model": result})
        return
    show(ctx, training, TRAINING_KEYS)
    if result is not None:
        click.echo(f"\n{decision}: model {result.id} ({result.name}) is now at version {result.version}")
    elif decision is None:
        click.echo(f"\ncandidate waiting: headstart decide {training.id} update|keep_both|discard")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@command(None, "decide")
@click.argument("training_id", type=int)
@click.argument("decision", type=click.Choice(["update", "keep_both", "discard"]))
@click.option("--name", default=None, help="Name of the new model, for keep_both.")
def decide(ctx: Context, training_id: int, decision: str, name: str | None) -> None:
    """Decide on a training's candidate: update the model, keep both, or discard it."""
    result = ctx.api.trainings.decide(training_id, decision, name=name)
    training = ctx.api.trainings.get(training_id)
    if ctx.json:
        emit_json({"training": training, "model": result})
    else:
        show(ctx, training, TRAINING_KEYS)


@command(None, "trainings")
@click.option("--model", "model_id", type=int, default=None, help="Only trainings of this model.")
def trainings(ctx: Context, model_id: int | None) -> None:
    """List your trainings."""
    rows = ctx.api.trainings.list(model_id=model_id)
    if ctx.json:
        emit_json(rows)
        return
    plain = [
        {
            "id": t.id,
            "model": f"{t.model_id} v{t.model_version}",
            "dataset": t.dataset_id,
            "status": t.status,
            "epochs": len(t.epochs),
            "val_accuracy": t.epochs[-1].val_accuracy if t.epochs else None,
        }
        for t in rows
    ]
    click.echo(table(plain, ["id", "model", "dataset", "status", "epochs", "val_accuracy"]))
