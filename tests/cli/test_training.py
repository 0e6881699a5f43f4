"""`headstart train`, `decide` and `trainings`: each option's effect on the stored training."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.harness import headstart

OPTIONS = (
    *("--epochs", "2", "--batch-size", "4", "--learning-rate", "0.05", "--optimizer", "sgd"),
    *("--loss", "categorical_crossentropy", "--fine-tune-layers", "1", "--early-stopping", "off"),
    *("--label-smoothing", "0.1"),
)


@dataclass(frozen=True)
class Bench:
    home: Path
    model: dict
    dataset: dict


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path) -> Bench:
    home = tmp_path_factory.mktemp("training") / "home"
    dataset = headstart("datasets", "add", shapes_folder, "--name", "shapes", "--json", home=home).json
    labels = ",".join(dataset["labels"])
    model = headstart(
        *("models", "create", "--name", "cnn", "--architecture", "small_cnn", "--weights", "none"),
        *("--filters", "2", "--labels", labels, "--json"),
        home=home,
    ).json
    return Bench(home, model, dataset)


def losses(training: dict) -> list[float]:
    return [e["loss"] for e in training["epochs"]]


def test_options_are_stored_and_the_seed_repeats_a_training(bench: Bench) -> None:
    model_id = bench.model["id"]
    first = headstart("train", model_id, "shapes", *OPTIONS, "--seed", "7", "--json", home=bench.home).json
    training = first["training"]
    assert training["config"] | {"gpu": False} == {
        "optimizer": "sgd",
        "learning_rate": 0.05,
        "loss": "categorical_crossentropy",
        "label_smoothing": 0.1,
        "epochs": 2,
        "batch_size": 4,
        "fine_tune_layers": 1,
        "early_stopping_patience": None,
        "seed": 7,
        "gpu": False,
    }
    assert len(training["epochs"]) == 2 and training["status"] == "candidate" and first["model"] is None
    # The labels are the dataset's, so the head is kept; a body that trains cannot use cached features.
    assert (training["head"], training["feature_cache"]) == ("kept", None)

    twin = headstart(
        *("train", model_id, "shapes", *OPTIONS, "--seed", "7", "--decision", "keep_both", "--name", "twin"),
        *("--json",),
        home=bench.home,
    ).json
    assert losses(twin["training"]) == pytest.approx(losses(training), rel=1e-6)
    assert twin["training"]["status"] == "kept_both"
    assert (twin["model"]["name"], twin["model"]["parent_id"]) == ("twin", model_id)

    other = headstart(
        *("train", model_id, "shapes", *OPTIONS, "--seed", "8", "--decision", "discard", "--json"),
        home=bench.home,
    ).json
    assert losses(other["training"]) != pytest.approx(losses(training), rel=1e-3)
    assert other["training"]["status"] == "discarded" and other["model"] is None
    names = [m["name"] for m in headstart("models", "list", "--json", home=bench.home).json]
    assert names == ["cnn", "twin"]

    # The waiting candidate becomes the model's next version.
    decided = headstart("decide", training["id"], "update", "--json", home=bench.home).json
    assert decided["training"]["status"] == "updated" and decided["model"]["version"] == 2


def test_the_defaults_are_the_training_configs(bench: Bench) -> None:
    from headstart.kernels.schemas import TrainingConfig

    run = headstart("train", bench.model["id"], "shapes", "--json", home=bench.home).json["training"]
    assert run["config"] == TrainingConfig().model_dump()
    assert 1 <= len(run["epochs"]) <= TrainingConfig().epochs and run["feature_cache"] is not None
    shown = headstart("train", "--help", home=bench.home).stdout
    assert f"[default: {TrainingConfig().early_stopping_patience}]" in " ".join(shown.split())


def stopping_epoch(monitored: list[float], patience: int) -> int:
    """How many epochs Keras' EarlyStopping runs on these losses (min_delta 0), if it stops."""
    best, wait = math.inf, 0
    for epoch, value in enumerate(monitored, start=1):
        if value < best:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return len(monitored)


def test_early_stopping_and_a_later_decision(bench: Bench) -> None:
    model_id = bench.model["id"]
    run = headstart(
        *("train", model_id, "shapes", "--epochs", "20", "--early-stopping", "1", "--learning-rate", "10"),
        *("--json",),
        home=bench.home,
    ).json["training"]
    epochs = run["epochs"]
    has_val = bench.dataset["counts"]["val"] > 0
    monitored = [e["val_loss"] if has_val else e["loss"] for e in epochs]
    assert run["config"]["early_stopping_patience"] == 1 and run["feature_cache"] is not None
    assert len(epochs) < 20, monitored
    assert len(epochs) == stopping_epoch(monitored, 1), monitored

    later = headstart("decide", run["id"], "keep_both", "--name", "later", "--json", home=bench.home).json
    assert later["training"]["status"] == "kept_both" and later["model"]["name"] == "later"
    mine = headstart("trainings", "--model", model_id, "--json", home=bench.home).json
    assert run["id"] in [t["id"] for t in mine] and all(t["model_id"] == model_id for t in mine)
    assert headstart("trainings", "--model", later["model"]["id"], "--json", home=bench.home).json == []
    table = headstart("trainings", home=bench.home).stdout.splitlines()
    assert table[0].split() == ["ID", "MODEL", "DATASET", "STATUS", "EPOCHS", "VAL_ACCURACY"]
    assert len(table) == 1 + len(headstart("trainings", "--json", home=bench.home).json)


def test_bad_training_options_are_one_line(bench: Bench) -> None:
    zero = headstart("train", bench.model["id"], "shapes", "--epochs", "0", home=bench.home, code=2)
    assert zero.error.startswith("error: epochs:") and "greater than or equal to 1" in zero.error
    layers = headstart(
        "train", bench.model["id"], "shapes", "--fine-tune-layers", "some", home=bench.home, code=2
    )
    assert (
        "'some' is not a number of layers, or 'all'" in layers.error
        and "(see 'headstart train --help')" in layers.error
    )
