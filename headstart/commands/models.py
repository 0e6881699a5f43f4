"""`headstart models`: create, upload, list, show, download, share and delete models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click

from headstart.commands.base import Context, command, show, split_labels
from headstart.commands.options import HeadstartGroup
from headstart.kernels.schemas import ARCHITECTURE_NAMES, MAX_SEED, ExportFormat
from headstart.output import emit_json, progress_bar, table

MODEL_KEYS = [
    "id",
    "name",
    "owner",
    "kind",
    "labels",
    "public",
    "version",
    "parent_id",
    "parent_version",
    "architecture",
    "seed",
    "weights_source",
    "params",
    "size_bytes",
    "input_contract",
    "description",
    "created_at",
    "updated_at",
]
MODEL_COLUMNS = ["id", "name", "owner", "kind", "version", "public", "params", "labels"]


@click.group(cls=HeadstartGroup)
def models() -> None:
    """Create, upload, list, show, download, share and delete models.

    \b
    Examples:
      headstart models create --name base --architecture mobilenet_v2 --labels cat,dog --weights none
      headstart models create --name tiny --architecture small_cnn --weights none --filters 4 --seed 7
      headstart models create --name lite --architecture efficientnet_lite0 --imagenet-head
      headstart models upload my_model.keras --name mine --labels cat,dog
      headstart models list --labels dog,cat --json   # labels match as a set
      headstart models show 1
      headstart models publish 1
      headstart models download 1 model.keras
      headstart models download 1 model-tflite.zip --format tflite
    """


@command(models, "create")
@click.option("--name", required=True, help="A name for the model.")
@click.option(
    "--architecture", type=click.Choice(ARCHITECTURE_NAMES), required=True, help="Zoo architecture."
)
@click.option(
    "--labels",
    default=None,
    help="Comma-separated labels: a classifier with a fresh head. Without: a feature vector.",
)
@click.option(
    "--imagenet-head",
    is_flag=True,
    help="Instead of --labels: keep the pretrained ImageNet classifier and its 1000 labels "
    "(efficientnet_lite0, 1 and 2).",
)
@click.option(
    "--weights",
    type=click.Choice(["imagenet", "none"]),
    default="imagenet",
    show_default=True,
    help="Start from ImageNet weights (the catalog's weights folder first, then an installed "
    "package or Keras' download), or from random weights on purpose.",
)
@click.option("--alpha", type=float, default=None, help="Width multiplier of MobileNets.")
@click.option("--filters", type=int, default=None, help="Base filter count of small_cnn.")
@click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=0,
    show_default=True,
    help="Seeds the starting weights (all but ImageNet's): the same seed builds the same model.",
)
@click.option("--description", default="", help="What the model is for.")
@click.option("--public", is_flag=True, help="Visible to every user (default: private).")
def models_create(
    ctx: Context,
    name: str,
    architecture: str,
    labels: str | None,
    imagenet_head: bool,
    weights: str,
    alpha: float | None,
    filters: int | None,
    seed: int,
    description: str,
    public: bool,
) -> None:
    """Create a model from the zoo, taking raw 224x224 RGB in 0-255.

    With --labels it is a classifier with a softmax head of that many outputs; with --imagenet-head,
    the pretrained ImageNet classifier (1000 labels); with neither, a feature vector. Its seed and
    where its ImageNet weights came from are stored with it: `models show` says both.
    """
    options = {k: v for k, v in {"alpha": alpha, "filters": filters}.items() if v is not None}
    wanted = split_labels(labels)
    with progress_bar(f"build {architecture}") as update:
        model = ctx.api.models.create(
            name=name,
            architecture=architecture,
            labels=wanted,
            weights=None if weights == "none" else weights,
            imagenet_head=imagenet_head,
            options=options,
            seed=seed,
            description=description,
            public=public,
        )
        update(1, 1)
    show(ctx, model, MODEL_KEYS)


@command(models, "upload")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="A name for the model.")
@click.option(
    "--labels", default=None, help="Comma-separated output labels, if the file does not carry them."
)
@click.option("--description", default="", help="What the model is for.")
@click.option("--public", is_flag=True, help="Visible to every user (default: private).")
def models_upload(
    ctx: Context, file: Path, name: str, labels: str | None, description: str, public: bool
) -> None:
    """Upload a .keras file. Only built-in Keras layers are accepted (no Lambda, no custom code)."""
    wanted = split_labels(labels)
    model = ctx.api.models.upload(file, name=name, labels=wanted, description=description, public=public)
    show(ctx, model, MODEL_KEYS)


@command(models, "list")
@click.option("--owner", default=None, help="Only models of this user.")
@click.option("--kind", type=click.Choice(["classifier", "feature_vector"]), default=None)
@click.option("--labels", default=None, help="Only models with exactly these comma-separated labels.")
@click.option("--mine", is_flag=True, help="Only my models.")
@click.option("--public/--private", "public", default=None, help="Only public or only private models.")
def models_list(
    ctx: Context, owner: str | None, kind: str | None, labels: str | None, mine: bool, public: bool | None
) -> None:
    """List the models you can see: yours and every public one."""
    wanted = split_labels(labels)
    rows = ctx.api.models.list(owner=owner, kind=kind, labels=wanted, mine=mine, public=public)
    show(ctx, rows, columns=MODEL_COLUMNS)


@command(models, "show")
@click.argument("model_id", type=int)
def models_show(ctx: Context, model_id: int) -> None:
    """Show a model with its versions and the trainings that made them."""
    model = ctx.api.models.get(model_id)
    versions = ctx.api.models.versions(model_id)
    history = ctx.api.trainings.history(model_id)
    if ctx.json:
        emit_json({"model": model, "versions": versions, "trainings": history})
        return
    show(ctx, model, MODEL_KEYS)
    click.echo("\nversions:")
    show(ctx, versions, columns=["version", "kind", "params", "size_bytes", "training_id", "created_at"])
    if history:
        click.echo("\ntrainings:")
        rows = [
            {
                "training": t.id,
                "dataset": t.dataset_id,
                "from": f"{t.model_id} v{t.model_version}",
                "epochs": len(t.epochs),
                "val_accuracy": t.epochs[-1].val_accuracy if t.epochs else None,
                "status": t.status,
            }
            for t in history
        ]
        click.echo(table(rows, list(rows[0])))


@command(models, "download")
@click.argument("model_id", type=int)
@click.argument("dest", type=click.Path(path_type=Path), default=Path("."))
@click.option("--version", type=int, default=None, help="A version other than the current one.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(get_args(ExportFormat)),
    default="keras",
    show_default=True,
    help="keras: a .keras file. saved_model or tflite: a .zip of TensorFlow's SavedModel folder or "
    "model.tflite, with labels.txt (one label per line, in output order; none for a feature vector).",
)
def models_download(ctx: Context, model_id: int, dest: Path, version: int | None, format_: str) -> None:
    """Write a model as one normal .keras file that keras.saving.load_model opens anywhere, or as a
    zip for TensorFlow's runtimes (tf.saved_model.load, or a TFLite interpreter).

    DEST is a file (.keras, or .zip for --format saved_model and tflite) or a folder to name it in.
    The first download of a version in a format of TensorFlow's converts it (seconds), and the
    catalog keeps the result for the next one.
    """
    with progress_bar(f"download model {model_id} as {format_}"):
        path = ctx.api.models.download(model_id, dest, version, format=format_)
    if ctx.json:
        emit_json({"path": str(path)})
    else:
        click.echo(str(path))


def _update(ctx: Context, model_id: int, **changes: Any) -> None:
    show(ctx, ctx.api.models.update(model_id, **changes), MODEL_KEYS)


@command(models, "publish")
@click.argument("model_id", type=int)
def models_publish(ctx: Context, model_id: int) -> None:
    """Make a model public: every user can see, download, evaluate and re-train it."""
    _update(ctx, model_id, public=True)


@command(models, "unpublish")
@click.argument("model_id", type=int)
def models_unpublish(ctx: Context, model_id: int) -> None:
    """Make a model private: to everyone else it no longer exists."""
    _update(ctx, model_id, public=False)


@command(models, "rename")
@click.argument("model_id", type=int)
@click.argument("name")
def models_rename(ctx: Context, model_id: int, name: str) -> None:
    """Rename a model."""
    _update(ctx, model_id, name=name)


@command(models, "describe")
@click.argument("model_id", type=int)
@click.argument("description")
def models_describe(ctx: Context, model_id: int, description: str) -> None:
    """Set a model's description."""
    _update(ctx, model_id, description=description)


@command(models, "delete")
@click.argument("model_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def models_delete(ctx: Context, model_id: int, yes: bool) -> None:
    """Delete a model with its versions, trainings and evaluations."""
    model = ctx.api.models.get(model_id)
    if not yes and not click.confirm(f"Delete model {model_id} ({model.name}) and its trainings?"):
        raise click.Abort()
    ctx.api.models.delete(model_id)
    if ctx.json:
        emit_json({"deleted": model_id})
    else:
        click.echo(f"deleted model {model_id}")
