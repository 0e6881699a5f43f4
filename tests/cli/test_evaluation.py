"""`headstart evaluate` and `leaderboard`: scores that agree with the dataset, each other and the board."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Shared
from tests.cli.harness import headstart


def test_a_split_is_scored_on_all_its_images_and_the_leaderboard_agrees(shared: Shared) -> None:
    model_id = shared.model["id"]
    evaluation = headstart("evaluate", model_id, "--dataset", "shapes", "--json", home=shared.home).json
    counts = shared.dataset["counts"]
    assert (evaluation["split"], evaluation["model_version"], evaluation["comparable"]) == ("test", 2, True)
    assert evaluation["count"] == counts["test"] > 0
    confusion = evaluation["result"]["confusion"]
    assert len(confusion) == len(shared.dataset["labels"]) and sum(map(sum, confusion)) == counts["test"]
    correct = sum(row[i] for i, row in enumerate(confusion))
    assert evaluation["accuracy"] == pytest.approx(correct / counts["test"])
    for label, row in zip(evaluation["result"]["per_class"], confusion, strict=True):
        assert label["support"] == sum(row)

    board = headstart("leaderboard", "shapes", "--json", home=shared.home).json
    assert [(r["model_id"], r["version"], r["rank"]) for r in board] == [(model_id, 2, 1)]
    assert board[0]["accuracy"] == evaluation["accuracy"] and board[0]["count"] == evaluation["count"]
    text = headstart("leaderboard", "shapes", home=shared.home).stdout.splitlines()
    assert text[0].split()[:3] == ["RANK", "MODEL_ID", "MODEL_NAME"] and text[1].split()[:3] == [
        "1",
        str(model_id),
        "cnn",
    ]
    shown = headstart("evaluate", model_id, "--dataset", "shapes", home=shared.home).stdout
    assert f"{evaluation['accuracy']:.4f}" in shown and "confusion (rows: true, columns: predicted)" in shown


def test_another_version_and_split(shared: Shared) -> None:
    first = headstart(
        *("evaluate", shared.model["id"], "--dataset", str(shared.dataset["id"]), "--split", "train"),
        *("--version", "1", "--json"),
        home=shared.home,
    ).json
    assert (first["model_version"], first["split"], first["count"]) == (
        1,
        "train",
        shared.dataset["counts"]["train"],
    )


def test_image_files_get_their_top_labels(shared: Shared, shapes_folder: Path) -> None:
    images = [sorted((shapes_folder / label).glob("*.png"))[0] for label in ("circle", "square")]
    answer = headstart(
        "evaluate", shared.model["id"], *images, "--top-k", "2", "--json", home=shared.home
    ).json
    assert [Path(p["file"]).name for p in answer["predictions"]] == [i.name for i in images]
    for prediction in answer["predictions"]:
        top = prediction["top"]
        assert len(top) == 2 and {t["label"] for t in top} <= set(shared.dataset["labels"])
        assert top[0]["probability"] >= top[1]["probability"]


def test_bad_evaluations_are_one_line(shared: Shared, tmp_path: Path) -> None:
    neither = headstart("evaluate", shared.model["id"], home=shared.home, code=2)
    assert neither.error == "error: give either --dataset or image files, not both or neither"
    top = headstart(
        "evaluate", shared.model["id"], "--dataset", "shapes", "--top-k", "0", home=shared.home, code=2
    )
    assert top.error == "error: --top-k must be at least 1"
    missing = headstart("evaluate", shared.model["id"], tmp_path / "nope.png", home=shared.home, code=2)
    assert missing.error.startswith("error: no such image file") and "nope.png" in missing.error
