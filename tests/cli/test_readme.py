"""README.md's command-line examples, run as written on a fresh catalog, each checked through --json.

The examples are read from README.md itself, so an edited README is what is tested. They run in a
folder holding the files they name (photos.zip, my_model.keras, cat.jpg, dog.png), made for real;
the catalog is a fresh one, chosen by $HEADSTART_HOME as a user would.
"""

from __future__ import annotations

import itertools
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from tests.cli.conftest import Files
from tests.cli.harness import Result, headstart

README = Path(__file__).parents[2] / "README.md"
SECTION = "## The command line"
USER = "alice"


def readme_examples() -> list[list[str]]:
    """The `headstart` lines of the first sh block of README's command-line section."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("headstart")]


def option(argv: list[str], flag: str, command: tuple[str, ...]) -> str | None:
    """The value that `flag` has in `argv`, or the command's own default for it."""
    if flag in argv:
        return argv[argv.index(flag) + 1]
    from headstart.cli import main

    target: click.Command = main
    for name in command:
        target = target.commands[name]  # type: ignore[attr-defined]
    default = next(p for p in target.params if flag in p.opts).default
    return None if default is None else str(default)


class Catalog:
    """What the examples have made so far, and the --json queries that check it."""

    def __init__(self, home: Path, files: Files) -> None:
        self.home = home
        self.files = files
        self.models: dict[int, dict] = {}  # as shown when made, in the order made
        self.trainings: list[int] = []
        self.datasets: dict[str, dict] = {}  # by name, as shown when added
        self.scores: dict[tuple[int, str], dict] = {}  # (model, dataset) -> its test evaluation

    def query(self, *args: object, user: str = USER) -> Any:
        return headstart(*args, "--json", home=self.home, user=user, cwd=self.files.folder).json

    def model(self, model_id: int | str) -> dict:
        return self.query("models", "show", model_id)["model"]


def check_help(catalog: Catalog, argv: list[str], result: Result) -> None:
    from headstart.cli import main

    for name in main.commands:
        assert name in result.stdout
    assert "Quick start" in result.stdout and "Global options" in result.stdout


def check_datasets_add(catalog: Catalog, argv: list[str], result: Result) -> None:
    source = catalog.files.folder / argv[2]
    name = str(option(argv, "--name", ("datasets", "add")))
    with zipfile.ZipFile(source) as archive:
        images = [n for n in archive.namelist() if not n.endswith("/")]
    shown = catalog.query("datasets", "show", name)
    assert shown["name"] == name
    assert shown["labels"] == sorted({n.split("/")[-2] for n in images})
    assert sum(shown["counts"].values()) == len(images)
    assert shown["counts"]["test"] > 0, "the examples evaluate on the test split"
    catalog.datasets[name] = shown


def check_datasets_list(catalog: Catalog, argv: list[str], result: Result) -> None:
    assert catalog.query("datasets", "list") == list(catalog.datasets.values())


def _new_model(catalog: Catalog, argv: list[str], command: tuple[str, ...]) -> dict:
    # A fresh catalog numbers models from 1, so the examples' ids are the order they are made in.
    model = catalog.model(len(catalog.models) + 1)
    catalog.models[model["id"]] = model
    assert model["name"] == option(argv, "--name", command)
    labels = option(argv, "--labels", command)
    assert model["labels"] == (labels.split(",") if labels else None)
    assert model["kind"] == ("classifier" if labels else "feature_vector")
    assert model["owner"] == USER and model["version"] == 1
    return model


def check_models_create(catalog: Catalog, argv: list[str], result: Result) -> None:
    model = _new_model(catalog, argv, ("models", "create"))
    assert model["architecture"] == option(argv, "--architecture", ("models", "create"))
    assert model["seed"] == int(str(option(argv, "--seed", ("models", "create"))))


def check_models_upload(catalog: Catalog, argv: list[str], result: Result) -> None:
    model = _new_model(catalog, argv, ("models", "upload"))
    assert model["architecture"] is None and model["seed"] is None


def check_models_list(catalog: Catalog, argv: list[str], result: Result) -> None:
    mine = catalog.query("models", "list", "--mine")
    assert [m["id"] for m in mine] == list(catalog.models)
    assert all(m["owner"] == USER for m in mine)


def check_train(catalog: Catalog, argv: list[str], result: Result) -> None:
    model_id, dataset = int(argv[1]), argv[2]
    trainings = catalog.query("trainings")
    assert len(trainings) == len(catalog.trainings) + 1
    training = trainings[-1]
    catalog.trainings.append(training["id"])
    assert training["model_id"] == model_id and training["dataset_id"] == catalog.datasets[dataset]["id"]
    epochs = int(str(option(argv, "--epochs", ("train",))))
    assert training["config"]["epochs"] == epochs and len(training["epochs"]) == epochs
    assert training["config"]["learning_rate"] == float(str(option(argv, "--learning-rate", ("train",))))
    layers = option(argv, "--fine-tune-layers", ("train",))
    assert str(training["config"]["fine_tune_layers"]) == layers
    # A frozen body trains on cached features; a body that trains cannot.
    assert (training["feature_cache"] is None) == (layers != "0")
    decision = option(argv, "--decision", ("train",))
    if decision == "keep_both":
        assert training["status"] == "kept_both"
        kept = catalog.model(training["result_model_id"])
        assert kept["id"] == len(catalog.models) + 1 and kept["parent_id"] == model_id
        catalog.models[kept["id"]] = kept
    else:
        assert decision is None and training["status"] == "candidate"


def check_evaluate(catalog: Catalog, argv: list[str], result: Result) -> None:
    model = catalog.models[int(argv[1])]
    top_k = int(str(option(argv, "--top-k", ("evaluate",))))
    dataset = option(argv, "--dataset", ("evaluate",))
    answer = catalog.query("evaluate", *argv[1:])
    if dataset is None:
        images = list(itertools.takewhile(lambda a: not a.startswith("-"), argv[2:]))
        assert [Path(p["file"]).name for p in answer["predictions"]] == images
        for prediction in answer["predictions"]:
            assert len(prediction["top"]) == min(top_k, len(model["labels"]))
            assert {t["label"] for t in prediction["top"]} <= set(model["labels"])
        return
    split = option(argv, "--split", ("evaluate",))
    count = catalog.datasets[dataset]["counts"][split]
    assert (answer["split"], answer["count"], answer["model_version"]) == (split, count, model["version"])
    confusion = answer["result"]["confusion"]
    correct = sum(row[i] for i, row in enumerate(confusion))
    assert sum(map(sum, confusion)) == count
    assert answer["accuracy"] == pytest.approx(correct / count)
    if split == "test":
        catalog.scores[model["id"], dataset] = answer


def check_leaderboard(catalog: Catalog, argv: list[str], result: Result) -> None:
    dataset = argv[1]
    board = catalog.query("leaderboard", dataset)
    assert sorted(row["model_id"] for row in board) == sorted(catalog.models)
    scores = [row["accuracy"] for row in board]
    assert scores == sorted(scores, reverse=True) and board[0]["rank"] == 1
    assert all(row["count"] == catalog.datasets[dataset]["counts"]["test"] for row in board)
    # The board's scores are the evaluations' own, where an example asked for one.
    for row in board:
        scored = catalog.scores.get((row["model_id"], dataset))
        if scored is not None:
            assert (row["accuracy"], row["version"]) == (scored["accuracy"], scored["model_version"])
    assert any((row["model_id"], dataset) in catalog.scores for row in board)


def check_benchmark(catalog: Catalog, argv: list[str], result: Result) -> None:
    datasets = argv[1:]
    table = catalog.query("benchmark", *datasets)
    assert table["datasets"] == datasets and table["pending"] == 0
    # Every model the user sees is under its body's row, and each cell is its probe's score.
    assert sorted(m["id"] for row in table["rows"] for m in row["models"]) == sorted(catalog.models)
    for row in table["rows"]:
        for cell, dataset in zip(row["cells"], datasets, strict=True):
            assert cell["state"] == "scored" and 0.0 <= cell["accuracy"] <= 1.0
            assert cell["count"] == catalog.datasets[dataset]["counts"]["test"]
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["RANK", "BODY", "NAME", "MODELS", "MEAN_RANK", *(d.upper() for d in datasets)]
    assert [line.split()[1] for line in lines] == [row["body"][:12] for row in table["rows"]]


def check_models_publish(catalog: Catalog, argv: list[str], result: Result) -> None:
    model_id = int(argv[2])
    seen = catalog.query("models", "list", user="bob")
    assert [(m["id"], m["public"]) for m in seen] == [(model_id, True)]


def check_models_download(catalog: Catalog, argv: list[str], result: Result) -> None:
    import keras

    path = catalog.files.folder / argv[3]
    assert (catalog.files.folder / result.stdout.strip()).resolve() == path.resolve()
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert model.count_params() == catalog.models[int(argv[2])]["params"]


def check_sweep(catalog: Catalog, argv: list[str], result: Result) -> None:
    model_id = int(argv[1])
    trainings = catalog.query("trainings")
    rates = [float(v) for v in str(option(argv, "--learning-rate", ("sweep",))).split(",")]
    smoothings = [float(v) for v in str(option(argv, "--label-smoothing", ("sweep",))).split(",")]
    runs = trainings[len(catalog.trainings) :]
    catalog.trainings.extend(run["id"] for run in runs)
    assert {(r["config"]["learning_rate"], r["config"]["label_smoothing"]) for r in runs} == {
        (rate, smoothing) for rate in rates for smoothing in smoothings
    }
    assert all(r["model_id"] == model_id and r["status"] == "candidate" for r in runs)
    [sweep] = [s for s in catalog.query("sweeps") if {r["id"] for r in s["runs"]} == {r["id"] for r in runs}]
    scores = [run["val_accuracy"] for run in sweep["runs"]]
    assert scores == sorted(scores, reverse=True)


CHECKS: dict[tuple[str, ...], Callable[[Catalog, list[str], Result], None]] = {
    ("--help",): check_help,
    ("datasets", "add"): check_datasets_add,
    ("datasets", "list"): check_datasets_list,
    ("models", "create"): check_models_create,
    ("models", "upload"): check_models_upload,
    ("models", "list"): check_models_list,
    ("train",): check_train,
    ("sweep",): check_sweep,
    ("evaluate",): check_evaluate,
    ("leaderboard",): check_leaderboard,
    ("benchmark",): check_benchmark,
    ("models", "publish"): check_models_publish,
    ("models", "download"): check_models_download,
}


def check_for(argv: list[str]) -> Callable[[Catalog, list[str], Result], None]:
    for length in (2, 1):
        if tuple(argv[1 : 1 + length]) in CHECKS:
            return CHECKS[tuple(argv[1 : 1 + length])]
    raise AssertionError(f"README example {shlex.join(argv)!r} has no check of its effect in {__file__}")


def test_readme_has_command_line_examples() -> None:
    examples = readme_examples()
    assert len(examples) >= 10 and all(e[0] == "headstart" for e in examples)
    for argv in examples:
        check_for(argv)


def test_every_readme_example_runs_as_written(files: Files, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "home", files)
    env = {"HEADSTART_HOME": str(catalog.home), "HEADSTART_USER": USER}
    for argv in readme_examples():
        result = headstart(*argv[1:], env=env, cwd=files.folder)
        # Text for people on stdout; stderr holds nothing but a training's epoch lines.
        assert all(line.startswith("epoch ") for line in result.stderr.splitlines()), result.stderr
        check_for(argv)(catalog, argv[1:], result)
