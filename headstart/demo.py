"""`headstart demo`: the demo datasets, a small CNN trained on shapes, transferred to digits, ranked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from headstart.output import emit_json, progress_bar, table

SHAPES = "shapes"
DIGITS = "digits"
BASE_MODEL = "shapes-cnn"
LEADERBOARD_COLUMNS = ["rank", "model_id", "model_name", "owner", "version", "accuracy", "loss", "count"]


def _dataset(api: Any, name: str, folder: Path, write: Any) -> Any:
    from headstart.kernels.errors import NotFound

    try:
        return api.datasets.get(name)
    except NotFound:
        pass
    if not folder.exists():
        with progress_bar(f"generate {name}", unit="img"):
            write(folder)
    with progress_bar(f"ingest {name}", unit="img") as update:
        return api.datasets.add(folder, name=name, description=f"demo: {name}", progress=update)


def _say(as_json: bool, message: str) -> None:
    if not as_json:
        click.echo(message)


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


def run_demo(
    api: Any,
    data: Path,
    *,
    shapes_per_class: int = 120,
    epochs: int = 12,
    digits_limit: int | None = None,
    as_json: bool = False,
) -> dict:
    """Run the whole demo through `api` (a local session or a client) and print its leaderboards.

    The demo images are written under `data` once. Running it twice trains nothing new.
    """
    from headstart.kernels.engine.demo_data import write_digits, write_shapes
    from headstart.kernels.schemas import TrainingConfig

    shapes = _dataset(api, SHAPES, data / SHAPES, lambda d: write_shapes(d, per_class=shapes_per_class))
    digits = _dataset(api, DIGITS, data / DIGITS, lambda d: write_digits(d, limit=digits_limit))
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

    boards = {}
    for name in (SHAPES, DIGITS):
        with progress_bar(f"leaderboard {name}", unit="model") as update:
            boards[name] = api.evaluations.leaderboard(name, progress=update)
        if not as_json:
            click.echo(f"\nleaderboard: {name} (test split)")
            click.echo(table([row.model_dump() for row in boards[name]], LEADERBOARD_COLUMNS))
    summary = {"datasets": [shapes, digits], "trainings": trainings, "leaderboards": boards}
    if as_json:
        emit_json(summary)
    return summary
