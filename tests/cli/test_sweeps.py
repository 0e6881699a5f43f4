"""`headstart sweep` and `sweeps`: each option's effect on the heads a sweep trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.harness import headstart


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path) -> Path:
    home = tmp_path_factory.mktemp("sweeps") / "home"
    headstart("datasets", "add", shapes_folder, "--name", "shapes", "--json", home=home)
    headstart(
        *("models", "create", "--name", "cnn", "--architecture", "small_cnn", "--weights", "none"),
        *("--filters", "2", "--json"),
        home=home,
    )
    return home


def test_every_list_option_makes_its_combinations(home: Path) -> None:
    done = headstart(
        *("sweep", "1", "shapes", "--learning-rate", "0.001,0.01", "--epochs", "2,3"),
        *("--optimizer", "Adam", "--batch-size", "8", "--label-smoothing", "0,0.1"),
        *("--loss", "categorical_crossentropy", "--early-stopping", "off", "--seed", "4", "--json"),
        home=home,
    ).json
    assert done["job"]["state"] == "succeeded" and len(done["runs"]) == 8
    combos = {
        (r["config"]["learning_rate"], r["config"]["epochs"], r["config"]["label_smoothing"])
        for r in done["runs"]
    }
    assert combos == {(lr, ep, ls) for lr in (0.001, 0.01) for ep in (2, 3) for ls in (0.0, 0.1)}
    for run in done["runs"]:
        config = run["config"]
        assert (config["optimizer"], config["batch_size"], config["loss"]) == (
            "adam",
            8,
            "categorical_crossentropy",
        )
        assert config["early_stopping_patience"] is None and config["seed"] == 4
        # Early stopping is off, so every head ran all its epochs.
        assert len(run["epochs"]) == config["epochs"] and run["status"] == "candidate"
    scores = [run["val_accuracy"] for run in done["runs"]]
    assert scores == sorted(scores, reverse=True)
    # `sweeps` lists it, and `sweeps ID` shows the same runs in the same order, as a table too.
    listed = headstart("sweeps", "--json", home=home).json
    assert done["id"] in [s["id"] for s in listed]
    again = headstart("sweeps", done["id"], "--json", home=home).json
    assert [r["id"] for r in again["runs"]] == [r["id"] for r in done["runs"]]
    text = headstart("sweeps", done["id"], home=home).stdout
    assert f"sweep {done['id']}" in text and "VAL_ACCURACY" in text and "headstart decide" in text


def test_draws_pick_that_many_distinct_heads(home: Path) -> None:
    done = headstart(
        *("sweep", "1", "shapes", "--learning-rate", "0.001,0.003,0.01,0.03", "--epochs", "1,2"),
        *("--draws", "3", "--json"),
        home=home,
    ).json
    picked = {(r["config"]["learning_rate"], r["config"]["epochs"]) for r in done["runs"]}
    assert len(done["runs"]) == len(picked) == 3 and done["draws"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "needs at least one list of values"),
        (("--learning-rate", "0.1,,0.2"), "blank value"),
        (("--learning-rate", "fast"), "not a comma-separated list of numbers"),
        (("--optimizer", "adam,lion"), "not a comma-separated list of optimizers"),
        (("--epochs", "1,2", "--draws", "0"), "--draws"),
    ],
)
def test_a_bad_grid_is_one_line_and_starts_nothing(home: Path, args: tuple, message: str) -> None:
    before = headstart("trainings", "--json", home=home).json
    failed = headstart("sweep", "1", "shapes", *args, home=home, code=2)
    assert message in failed.error
    assert headstart("trainings", "--json", home=home).json == before
