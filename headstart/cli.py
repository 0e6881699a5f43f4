"""The `headstart` command: datasets, models, training, evaluation and leaderboards from a shell.

It works on a local catalog (a folder, `./var` by default) as the user that `--user` names.
Every command takes `--json` for scripts. Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from headstart.kernels.schemas import ARCHITECTURE_NAMES
from headstart.output import emit_json, fields, progress_bar, table

EXIT_BAD_INPUT = 2


class Context:
    """What every command needs: the catalog (opened on first use), the user, and the output mode."""

    def __init__(self, home: str, user: str, config_file: str | None) -> None:
        self.home = home
        self.user_name = user
        self.config_file = config_file
        self.json = False
        self._catalog: Any = None

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from traitlets.config import Config

            from headstart.extension.manager import Catalog

            config = Config()
            if self.config_file:
                config = load_config(self.config_file)
            self._catalog = Catalog(home=self.home, config=config)
        return self._catalog

    @property
    def user(self) -> Any:
        return self.catalog.user(self.user_name)


def load_config(path: str) -> Any:
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    file = Path(path)
    if not file.is_file():
        raise click.BadParameter(f"no such config file: {path}", param_hint="--config")
    loader = JSONFileConfigLoader if file.suffix == ".json" else PyFileConfigLoader
    return loader(file.name, path=str(file.parent)).load_config()


def command(group: click.Group, name: str | None = None, **settings: Any) -> Callable:
    """A subcommand with `--json`, the shared context, and headstart errors turned into exit 2."""

    def decorate(function: Callable) -> Callable:
        @group.command(name, **settings)
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
    return [label.strip() for label in value.split(",") if label.strip()]


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
    "--config", "config_file", default=None, help="A traitlets config file (.py or .json) for the Catalog."
)
@click.version_option(package_name="headstart")
@click.pass_context
def main(context: click.Context, home: str, user: str, config_file: str | None) -> None:
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
    context.obj = Context(home, user, config_file)


# --- datasets -------------------------------------------------------------------------------


@main.group()
def datasets() -> None:
    """Add, list and show datasets. Datasets are public and are never deleted."""


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
        dataset = ctx.catalog.datasets.add(
            ctx.user,
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
    show(ctx, ctx.catalog.datasets.list(), columns=["id", "name", "labels", "counts", "created_by"])


@command(datasets, "show")
@click.argument("dataset")
def datasets_show(ctx: Context, dataset: str) -> None:
    """Show a dataset, by id or name."""
    show(ctx, ctx.catalog.datasets.get(dataset), [*DATASET_KEYS, "description", "skipped"])


@command(datasets, "delete")
@click.argument("dataset")
def datasets_delete(ctx: Context, dataset: str) -> None:
    """Refused: datasets are permanent, so every result on them stays comparable."""
    ctx.catalog.datasets.delete(ctx.user, dataset)


# --- models ---------------------------------------------------------------------------------

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
    "params",
    "size_bytes",
    "input_contract",
    "description",
    "created_at",
    "updated_at",
]
MODEL_COLUMNS = ["id", "name", "owner", "kind", "version", "public", "params", "labels"]


@main.group()
def models() -> None:
    """Create, upload, list, show, download, share and delete models."""


@command(models, "create")
@click.option("--name", required=True, help="A name for the model.")
@click.option(
    "--architecture", type=click.Choice(ARCHITECTURE_NAMES), required=True, help="Zoo architecture."
)
@click.option(
    "--labels", default=None, help="Comma-separated labels: a classifier. Without: a feature vector."
)
@click.option(
    "--weights",
    type=click.Choice(["imagenet", "none"]),
    default="imagenet",
    show_default=True,
    help="Start from ImageNet weights, or from random weights on purpose.",
)
@click.option("--alpha", type=float, default=None, help="Width multiplier of MobileNets.")
@click.option("--filters", type=int, default=None, help="Base filter count of small_cnn.")
@click.option("--description", default="", help="What the model is for.")
@click.option("--public", is_flag=True, help="Visible to every user (default: private).")
def models_create(
    ctx: Context,
    name: str,
    architecture: str,
    labels: str | None,
    weights: str,
    alpha: float | None,
    filters: int | None,
    description: str,
    public: bool,
) -> None:
    """Create a model from the zoo, taking raw 224x224 RGB in 0-255."""
    options = {k: v for k, v in {"alpha": alpha, "filters": filters}.items() if v is not None}
    with progress_bar(f"build {architecture}") as update:
        model = ctx.catalog.models.create(
            ctx.user,
            name=name,
            architecture=architecture,
            labels=split_labels(labels),
            weights=None if weights == "none" else weights,
            options=options,
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
    model = ctx.catalog.models.upload(
        ctx.user, file, name=name, labels=split_labels(labels), description=description, public=public
    )
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
    rows = ctx.catalog.models.list(
        ctx.user, owner=owner, kind=kind, labels=split_labels(labels), mine=mine, public=public
    )
    show(ctx, rows, columns=MODEL_COLUMNS)


@command(models, "show")
@click.argument("model_id", type=int)
def models_show(ctx: Context, model_id: int) -> None:
    """Show a model with its versions and the trainings that made them."""
    model = ctx.catalog.models.get(ctx.user, model_id)
    versions = ctx.catalog.models.versions(ctx.user, model_id)
    history = ctx.catalog.trainings.history(ctx.user, model_id)
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
def models_download(ctx: Context, model_id: int, dest: Path, version: int | None) -> None:
    """Write a model as one normal .keras file that keras.saving.load_model opens anywhere."""
    path = ctx.catalog.models.download(ctx.user, model_id, dest, version)
    if ctx.json:
        emit_json({"path": str(path)})
    else:
        click.echo(str(path))


def _update(ctx: Context, model_id: int, **changes: Any) -> None:
    show(ctx, ctx.catalog.models.update(ctx.user, model_id, **changes), MODEL_KEYS)


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
    model = ctx.catalog.models.get(ctx.user, model_id)
    if not yes and not click.confirm(f"Delete model {model_id} ({model.name}) and its trainings?"):
        raise click.Abort()
    ctx.catalog.models.delete(ctx.user, model_id)
    if ctx.json:
        emit_json({"deleted": model_id})
    else:
        click.echo(f"deleted model {model_id}")


# --- training -------------------------------------------------------------------------------

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


def fine_tune_value(value: str) -> int | str:
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("a number of layers, or 'all'") from None


@command(main, "train")
@click.argument("model_id", type=int)
@click.argument("dataset")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--optimizer", default="adam", show_default=True, help="adam, adamw, sgd or rmsprop.")
@click.option(
    "--loss",
    default="sparse_categorical_crossentropy",
    show_default=True,
    help="sparse_categorical_crossentropy or categorical_crossentropy.",
)
@click.option(
    "--fine-tune-layers",
    default="0",
    show_default=True,
    help="Body layers to unfreeze from the end, or 'all'. 0 trains only the head, on cached features.",
)
@click.option(
    "--early-stopping", type=int, default=None, help="Stop after this many epochs without a better val loss."
)
@click.option("--seed", type=int, default=0, show_default=True)
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
    fine_tune_layers: str,
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
    from headstart.kernels.schemas import TrainingConfig

    config = TrainingConfig(
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        fine_tune_layers=fine_tune_value(fine_tune_layers),
        early_stopping_patience=early_stopping,
        seed=seed,
    )
    user = ctx.user
    with progress_bar(f"train model {model_id}", total=epochs, unit="epoch") as update:

        def on_epoch(epoch: dict) -> None:
            update(epoch["epoch"], loss=epoch["loss"], acc=epoch["accuracy"], val_acc=epoch["val_accuracy"])
            if not ctx.json:
                click.echo(
                    f"epoch {epoch['epoch']:>3}  loss {epoch['loss']:.4f}  acc {epoch['accuracy']:.4f}  "
                    f"val_loss {_num(epoch['val_loss'])}  val_acc {_num(epoch['val_accuracy'])}",
                    err=True,
                )

        training = ctx.catalog.trainings.start(user, model_id, dataset, config, on_epoch=on_epoch)
    result = None
    if decision is not None:
        result = ctx.catalog.trainings.decide(user, training.id, decision, name=name)
        training = ctx.catalog.trainings.get(user, training.id)
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


@command(main, "decide")
@click.argument("training_id", type=int)
@click.argument("decision", type=click.Choice(["update", "keep_both", "discard"]))
@click.option("--name", default=None, help="Name of the new model, for keep_both.")
def decide(ctx: Context, training_id: int, decision: str, name: str | None) -> None:
    """Decide on a training's candidate: update the model, keep both, or discard it."""
    result = ctx.catalog.trainings.decide(ctx.user, training_id, decision, name=name)
    training = ctx.catalog.trainings.get(ctx.user, training_id)
    if ctx.json:
        emit_json({"training": training, "model": result})
    else:
        show(ctx, training, TRAINING_KEYS)


@command(main, "trainings")
@click.option("--model", "model_id", type=int, default=None, help="Only trainings of this model.")
def trainings(ctx: Context, model_id: int | None) -> None:
    """List your trainings."""
    rows = ctx.catalog.trainings.list(ctx.user, model_id=model_id)
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


# --- evaluation -----------------------------------------------------------------------------


@command(main, "evaluate")
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
            evaluation = ctx.catalog.evaluations.on_split(
                ctx.user, model_id, dataset, split, version=version, top_k=top_k
            )
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
        if result.get("per_class"):
            click.echo("")
            click.echo(table(result["per_class"], ["label", "precision", "recall", "support"]))
        if result.get("confusion"):
            click.echo("\nconfusion (rows: true, columns: predicted):")
            for label, row in zip(
                [c["label"] for c in result["per_class"]], result["confusion"], strict=False
            ):
                click.echo(f"  {label:>12}  " + " ".join(f"{v:>5}" for v in row))
        return
    with progress_bar(f"predict with model {model_id}", total=len(images), unit="img") as update:
        result = ctx.catalog.evaluations.on_files(
            ctx.user, model_id, list(images), version=version, top_k=top_k, progress=update
        )
    if ctx.json:
        emit_json(result)
        return
    rows = [
        {
            "file": p.get("file", p.get("index")),
            "top": ", ".join(f"{t['label']} {t['probability']:.3f}" for t in p["top"]),
        }
        for p in result["predictions"]
    ]
    click.echo(table(rows, ["file", "top"]))


@command(main, "leaderboard")
@click.argument("dataset")
def leaderboard(ctx: Context, dataset: str) -> None:
    """Rank every model you can see on a dataset's test split (scores are cached per version)."""
    with progress_bar(f"leaderboard {dataset}", unit="model") as update:
        rows = ctx.catalog.evaluations.leaderboard(ctx.user, dataset, progress=update)
    show(
        ctx,
        rows,
        columns=[
            "rank",
            "model_id",
            "model_name",
            "owner",
            "version",
            "accuracy",
            "loss",
            "count",
            "comparable",
        ],
    )


@command(main, "demo")
@click.option(
    "--shapes-per-class", type=int, default=120, show_default=True, help="Generated images per shape."
)
@click.option(
    "--epochs", type=int, default=12, show_default=True, help="Epochs on shapes; twice as many on digits."
)
@click.option(
    "--digits-limit", type=int, default=None, help="Use only this many digits (default: all 1,797)."
)
def demo(ctx: Context, shapes_per_class: int, epochs: int, digits_limit: int | None) -> None:
    """Ingest the demo datasets, train a small CNN on shapes, transfer it to digits, rank both."""
    from headstart.demo import run_demo

    run_demo(
        ctx.catalog,
        ctx.user,
        shapes_per_class=shapes_per_class,
        epochs=epochs,
        digits_limit=digits_limit,
        as_json=ctx.json,
    )


if __name__ == "__main__":
    main()
