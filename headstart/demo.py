"""`headstart demo`: what transfer learning buys, shown on Fashion-MNIST from ingest to leaderboard.

With Debian's Fashion-MNIST installed, the pretrained EfficientNet-Lite0 is re-trained (frozen body)
beside the same body randomly initialised and a small CNN trained from scratch, all three ranked on
one leaderboard, and the ImageNet classifier names a photo. Without it, the older demo runs: a small
CNN trained on generated shapes, transferred to scikit-learn's digits.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from headstart.commands.evaluation import LEADERBOARD_COLUMNS, predictions_table
from headstart.output import emit_json, progress_bar, table

FASHION = "fashion-mnist"
SHAPES = "shapes"
DIGITS = "digits"
BASE_MODEL = "shapes-cnn"
IMAGENET_MODEL = "imagenet-lite0"
# Photos bundled with scikit-image, classified by the ImageNet model.
PHOTOS = ("chelsea", "coffee")


@dataclass(frozen=True)
class FashionModel:
    """One model the demo trains on Fashion-MNIST: how it is built and which body layers train."""

    name: str
    architecture: str
    weights: str | None
    fine_tune_layers: int | str
    description: str


FASHION_MODELS = (
    FashionModel(
        "fashion-lite0-pretrained",
        "efficientnet_lite0",
        "imagenet",
        0,
        "EfficientNet-Lite0 with its ImageNet weights, a new head trained on Fashion-MNIST, body frozen.",
    ),
    FashionModel(
        "fashion-lite0-random",
        "efficientnet_lite0",
        None,
        0,
        "EfficientNet-Lite0 randomly initialised, trained like the pretrained one: what pretraining buys.",
    ),
    FashionModel(
        "fashion-small-cnn",
        "small_cnn",
        None,
        "all",
        "A small CNN trained from scratch on Fashion-MNIST, every layer.",
    ),
)


def _say(as_json: bool, message: str) -> None:
    if not as_json:
        click.echo(message)


def _dataset(api: Any, name: str, folder: Path, write: Callable[[Path], Any], as_json: bool) -> Any:
    """The catalog's dataset `name`; else written into `folder` (once, whole) and ingested."""
    from headstart.kernels.errors import NotFound

    try:
        found = api.datasets.get(name)
    except NotFound:
        pass
    else:
        _say(as_json, f"dataset {name} exists already; using it as it is")
        return found
    if not folder.exists():
        # Written beside its place and renamed, so that an interrupted run leaves no half folder.
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with progress_bar(f"generate {name}", unit="img") as update:
            write(partial, update)
        partial.rename(folder)
    with progress_bar(f"ingest {name}", unit="img") as update:
        return api.datasets.add(folder, name=name, description=f"demo: {name}", progress=update)


def _train(api: Any, model_id: int, dataset: str, config: Any, decision: str, name: str | None) -> Any:
    with (
        progress_bar("body features", unit="img") as features,
        progress_bar(f"train on {dataset}", total=config.epochs, unit="epoch") as update,
    ):
        training = api.trainings.start(
            model_id,
            dataset,
            config,
            on_epoch=lambda e: update(e["epoch"], loss=e["loss"], val_acc=e["val_accuracy"]),
            on_features=features,
        )
    model = api.trainings.decide(training.id, decision, name=name)
    return api.trainings.get(training.id), model


def _boards(api: Any, names: tuple[str, ...], as_json: bool) -> dict:
    boards = {}
    for name in names:
        with progress_bar(f"leaderboard {name}", unit="model") as update:
            boards[name] = api.evaluations.leaderboard(name, progress=update)
        if not as_json:
            click.echo(f"\nleaderboard: {name} (test split)")
            click.echo(table([row.model_dump() for row in boards[name]], LEADERBOARD_COLUMNS))
    return boards


def check_sizes(per_class: int, test_per_class: int, epochs: int | None) -> None:
    """Refuse sizes below one, before anything is opened or written."""
    from headstart.kernels.errors import Invalid

    if per_class < 1 or test_per_class < 1 or (epochs is not None and epochs < 1):
        raise Invalid("--per-class, --test-per-class and --epochs must be at least 1")


def run_demo(
    api: Any,
    data: Path,
    *,
    per_class: int = 100,
    test_per_class: int = 50,
    epochs: int | None = None,
    shapes_per_class: int = 120,
    digits_limit: int | None = None,
    fashion_dir: Path | None = None,
    as_json: bool = False,
) -> dict:
    """Run the demo through `api` (a local session or a client), print what it did, return a summary.

    Fashion-MNIST is used when `fashion_dir` (Debian's package folder by default) holds it; else the
    shapes and digits demo. `epochs` caps every training (default: TrainingConfig's, with early
    stopping, on Fashion-MNIST; 12 on shapes and twice as many on digits). The demo's images are
    written under `data` once, and running it twice trains nothing new.
    """
    from headstart.kernels.engine.demo_data import fashion_available
    from headstart.kernels.engine.fashion_mnist import FASHION_MNIST_DIR

    check_sizes(per_class, test_per_class, epochs)
    directory = Path(fashion_dir) if fashion_dir is not None else FASHION_MNIST_DIR
    available, message = fashion_available(directory)
    _say(as_json, message)
    if available:
        summary = fashion_demo(
            api,
            data,
            directory,
            per_class=per_class,
            test_per_class=test_per_class,
            epochs=epochs,
            as_json=as_json,
        )
    else:
        summary = shapes_demo(
            api,
            data,
            shapes_per_class=shapes_per_class,
            epochs=12 if epochs is None else epochs,
            digits_limit=digits_limit,
            as_json=as_json,
        )
    summary = {"data": FASHION if available else f"{SHAPES}+{DIGITS}", "message": message, **summary}
    if as_json:
        emit_json(summary)
    return summary


def fashion_demo(
    api: Any,
    data: Path,
    directory: Path,
    *,
    per_class: int,
    test_per_class: int,
    epochs: int | None,
    as_json: bool,
) -> dict:
    """Fashion-MNIST: three models trained and ranked, and the ImageNet classifier on photos.

    The trainings decide `update`: each model is made by the demo for this one dataset, so its
    untrained first version is of no use to keep as a model of its own, and on the leaderboard it
    would only add rows at chance. The training stays in the model's history (`models versions`).
    """
    from headstart.kernels.engine.demo_data import write_fashion
    from headstart.kernels.errors import Invalid
    from headstart.kernels.schemas import TrainingConfig

    try:  # asked first, so that a missing photo does not end the demo after its trainings
        import skimage.data  # noqa: F401
    except ImportError:
        raise Invalid(
            "the demo's ImageNet classifier names photos bundled with scikit-image, which is not "
            "installed: pip install 'headstart[pretrained]'"
        ) from None
    val_per_class = max(1, per_class // 8)
    folder = data / f"{FASHION}-{per_class}-{val_per_class}-{test_per_class}"
    fashion = _dataset(
        api,
        FASHION,
        folder,
        lambda dest, update: write_fashion(
            dest,
            per_class=per_class,
            val_per_class=val_per_class,
            test_per_class=test_per_class,
            directory=directory,
            progress=update,
        ),
        as_json,
    )
    _say(as_json, f"dataset: {fashion.name} {fashion.counts}")

    mine = {m.name: m for m in api.models.list(mine=True)}
    trainings = []
    for spec in FASHION_MODELS:
        model = mine.get(spec.name)
        if model is not None and model.version > 1:
            _say(as_json, f"model {model.id} ({spec.name}) is trained already; skipping its training")
            continue
        if model is None:
            model = api.models.create(
                name=spec.name,
                architecture=spec.architecture,
                labels=list(fashion.labels),
                weights=spec.weights,
                description=spec.description,
                public=True,
            )
            _say(as_json, f"created model {model.id} ({spec.name}, {model.params:,} parameters)")
        config = TrainingConfig(fine_tune_layers=spec.fine_tune_layers)
        if epochs is not None:
            config = config.model_copy(update={"epochs": epochs})
        training, _ = _train(api, model.id, FASHION, config, "update", None)
        trainings.append(training)
        _say(as_json, f"trained {spec.name} (fine_tune_layers {spec.fine_tune_layers}): {_kept(training)}")

    imagenet, predictions = _imagenet_photos(api, data, mine.get(IMAGENET_MODEL), as_json)
    boards = _boards(api, (FASHION,), as_json)
    return {
        "datasets": [fashion],
        "trainings": trainings,
        "imagenet_model": imagenet,
        "predictions": predictions,
        "leaderboards": boards,
    }


def _kept(training: Any) -> str:
    """The epoch a training kept (the lowest val loss: early stopping restores its weights)."""
    scored = [e for e in training.epochs if e.val_loss is not None]
    if not scored:
        return f"{len(training.epochs)} epochs"
    best = min(scored, key=lambda e: e.val_loss)
    return f"{len(training.epochs)} epochs, val accuracy {best.val_accuracy:.3f} at epoch {best.epoch} (kept)"


def _imagenet_photos(api: Any, data: Path, model: Any, as_json: bool) -> tuple[Any, list[dict]]:
    """The ImageNet classifier (made once) and its top 3 for photos bundled with scikit-image."""
    import skimage.data
    from PIL import Image

    if model is None:
        model = api.models.create(
            name=IMAGENET_MODEL,
            architecture="efficientnet_lite0",
            weights="imagenet",
            imagenet_head=True,
            description="EfficientNet-Lite0's own ImageNet classifier, 1000 labels.",
            public=True,
        )
        _say(
            as_json, f"created model {model.id} ({IMAGENET_MODEL}, {len(model.labels or [])} ImageNet labels)"
        )
    photos = data / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    files = []
    for name in PHOTOS:
        path = photos / f"{name}.png"
        if not path.exists():
            Image.fromarray(getattr(skimage.data, name)()).save(path)
        files.append(path)
    with progress_bar(f"predict with model {model.id}", total=len(files), unit="img") as update:
        result = api.evaluations.on_files(model.id, files, top_k=3, progress=update)
    predictions = result["predictions"]
    if not as_json:
        click.echo(f"\nImageNet classifier {model.id} ({IMAGENET_MODEL}) on scikit-image's photos:")
        click.echo(predictions_table(predictions, top="top 3"))
    return model, predictions


def shapes_demo(
    api: Any, data: Path, *, shapes_per_class: int, epochs: int, digits_limit: int | None, as_json: bool
) -> dict:
    """The demo without Fashion-MNIST: a small CNN trained on shapes, transferred to digits, ranked."""
    from headstart.kernels.engine.demo_data import write_digits, write_shapes
    from headstart.kernels.schemas import TrainingConfig

    shapes = _dataset(
        api, SHAPES, data / SHAPES, lambda d, update: write_shapes(d, per_class=shapes_per_class), as_json
    )
    digits = _dataset(
        api,
        DIGITS,
        data / DIGITS,
        lambda d, update: write_digits(d, limit=digits_limit, progress=update),
        as_json,
    )
    _say(as_json, f"datasets: {shapes.name} {shapes.counts}, {digits.name} {digits.counts}")

    existing = [m for m in api.models.list(mine=True) if m.name == BASE_MODEL]
    trainings = []
    if existing:
        base = existing[0]
        _say(as_json, f"model {base.id} ({BASE_MODEL}) exists already; skipping the trainings")
    else:
        base = api.models.create(
            name=BASE_MODEL,
            architecture="small_cnn",
            labels=list(shapes.labels),
            weights=None,
            description="A small CNN trained from scratch on the generated shapes.",
            public=True,
        )
        _say(as_json, f"created model {base.id} ({BASE_MODEL}, {base.params} parameters)")
        full = TrainingConfig(epochs=epochs, fine_tune_layers="all", learning_rate=2e-3, batch_size=16)
        training, base = _train(api, base.id, SHAPES, full, "update", None)
        trainings.append(training)
        _say(as_json, f"trained on shapes (all layers): val accuracy {training.epochs[-1].val_accuracy}")
        head_only = TrainingConfig(epochs=epochs * 2, learning_rate=1e-2, batch_size=64)
        training, transferred = _train(
            api, base.id, DIGITS, head_only, "keep_both", f"{BASE_MODEL} on digits"
        )
        trainings.append(training)
        _say(
            as_json,
            f"transferred to digits (frozen body, new head, feature cache {training.feature_cache}): "
            f"model {transferred.id}, val accuracy {training.epochs[-1].val_accuracy}",
        )
    boards = _boards(api, (SHAPES, DIGITS), as_json)
    return {"datasets": [shapes, digits], "trainings": trainings, "leaderboards": boards}
