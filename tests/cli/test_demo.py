"""`headstart demo`: Fashion-MNIST at the sizes asked, three models trained and ranked, the ImageNet
classifier on a photo, and a second run that trains nothing; without Fashion-MNIST, shapes and digits."""

from __future__ import annotations

from pathlib import Path

from tests.cli.harness import headstart
from tests.conftest import fashion_mnist_dir

TRAINED = {"fashion-lite0-pretrained": 0, "fashion-lite0-random": 0, "fashion-small-cnn": "all"}
CATS = {"tabby", "tiger cat", "Egyptian cat"}


def test_the_demo_trains_three_models_on_fashion_mnist_ranks_them_and_names_a_photo(tmp_path: Path) -> None:
    fashion_mnist_dir()  # skips here, fails in CI, when Debian's package is missing
    home = tmp_path / "home"
    small = ("--per-class", "6", "--test-per-class", "3", "--epochs", "2")
    demo = headstart("demo", *small, "--json", home=home, user="demo").json
    assert demo["data"] == "fashion-mnist" and "Fashion-MNIST" in demo["message"]
    (fashion,) = demo["datasets"]
    # val gets an eighth of --per-class, at least one per class.
    assert fashion["counts"] == {"train": 6 * 10, "val": 1 * 10, "test": 3 * 10}
    assert "t-shirt" in fashion["labels"] and len(fashion["labels"]) == 10
    written = home / "demo-data" / "fashion-mnist-6-1-3"
    assert len(list((written / "train" / "t-shirt").glob("*.png"))) == 6
    assert len(list((written / "test" / "ankle-boot").glob("*.png"))) == 3

    trainings = demo["trainings"]
    assert len(trainings) == 3 and {t["status"] for t in trainings} == {"updated"}
    assert all(len(t["epochs"]) <= 2 for t in trainings)  # --epochs caps each training
    models = {m["id"]: m for m in headstart("models", "list", "--json", home=home, user="demo").json}
    assert {models[t["model_id"]]["name"]: t["config"]["fine_tune_layers"] for t in trainings} == TRAINED
    assert all(m["public"] and m["owner"] == "demo" for m in models.values())

    board = demo["leaderboards"]["fashion-mnist"]
    ranked = [row for row in board if row["rank"] is not None]
    assert {row["model_name"] for row in ranked} == set(TRAINED)
    assert [row["rank"] for row in ranked] == [1, 2, 3]
    assert all(row["count"] == fashion["counts"]["test"] and row["version"] == 2 for row in ranked)

    imagenet = demo["imagenet_model"]
    assert imagenet["name"] == "imagenet-lite0" and len(imagenet["labels"]) == 1000
    chelsea = next(p for p in demo["predictions"] if p["file"] == "chelsea.png")
    assert CATS & {top["label"] for top in chelsea["top"]}, chelsea

    again = headstart("demo", *small, home=home, user="demo")
    assert again.stdout.count("is trained already; skipping its training") == 3
    assert "Egyptian cat" in again.stdout or "tabby" in again.stdout or "tiger cat" in again.stdout
    assert "leaderboard: fashion-mnist" in again.stdout
    assert len(headstart("trainings", "--json", home=home, user="demo").json) == 3


def test_without_fashion_mnist_the_demo_says_so_and_runs_shapes_and_digits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = tmp_path / "no-fashion-mnist"
    empty.mkdir()
    fallback = ("--fashion-mnist-dir", empty, "--shapes-per-class", "12", "--epochs", "2")
    demo = headstart("demo", *fallback, "--digits-limit", "150", "--json", home=home).json
    assert demo["data"] == "shapes+digits"
    assert demo["message"].startswith("using the generated shapes and scikit-learn's digits instead")
    assert str(empty) in demo["message"]  # the reason names the missing file
    shapes, digits = demo["datasets"]
    assert sum(shapes["counts"].values()) == 3 * 12 and sum(digits["counts"].values()) == 150
    assert len(list((home / "demo-data" / "shapes" / "circle").glob("*.png"))) == 12
    on_shapes, on_digits = demo["trainings"]
    assert len(on_shapes["epochs"]) == 2 and len(on_digits["epochs"]) == 2 * 2  # twice as many on digits
    assert (on_shapes["status"], on_digits["status"]) == ("updated", "kept_both")
    assert [row["model_name"] for row in demo["leaderboards"]["digits"]] == [
        "shapes-cnn on digits",
        "shapes-cnn",
    ]
    first = demo["leaderboards"]["shapes"][0]
    assert (first["model_name"], first["rank"], first["count"]) == ("shapes-cnn", 1, shapes["counts"]["test"])

    again = headstart("demo", *fallback, "--digits-limit", "150", home=home)
    assert again.stdout.startswith("using the generated shapes and scikit-learn's digits instead")
    assert "exists already; skipping the trainings" in again.stdout
    assert "leaderboard: shapes" in again.stdout and "leaderboard: digits" in again.stdout
    assert len(headstart("trainings", "--json", home=home).json) == 2


def test_bad_demo_sizes_are_refused_before_anything_is_made(tmp_path: Path) -> None:
    home = tmp_path / "home"
    refused = headstart("demo", "--per-class", "0", home=home, code=2)
    assert refused.error == "error: --per-class, --test-per-class and --epochs must be at least 1"
    assert not home.exists()  # refused before the catalog was opened
