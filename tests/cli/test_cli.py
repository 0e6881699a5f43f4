"""The `headstart` command, run in-process through click's runner on a real local catalog."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from headstart.cli import main


@pytest.fixture
def run(tmp_path: Path):
    runner = CliRunner()
    home = str(tmp_path / "home")

    def invoke(*args: str, user: str = "alice", code: int = 0) -> str:
        result = runner.invoke(main, ["--home", home, "--user", user, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output + result.stderr
        return result.stdout if code == 0 else result.stderr

    return invoke


def as_json(text: str) -> object:
    return json.loads(text)


def test_help_teaches_every_command(run) -> None:
    text = run("--help")
    for group in ("datasets", "models", "train", "evaluate", "leaderboard", "demo", "decide"):
        assert group in text
    for sub in ("add", "list", "show"):
        assert "--json" in run("datasets", sub, "--help")
    for sub in ("create", "upload", "list", "show", "download", "publish", "unpublish", "rename", "delete"):
        assert "--json" in run("models", sub, "--help")
    assert "fine-tune-layers" in run("train", "--help")


def test_datasets_commands(run, shapes_folder: Path) -> None:
    added = as_json(run("datasets", "add", str(shapes_folder), "--name", "shapes", "--json"))
    assert added["labels"] == ["circle", "square", "triangle"]
    assert [d["name"] for d in as_json(run("datasets", "list", "--json"))] == ["shapes"]
    assert "circle" in run("datasets", "show", "shapes")
    error = run("datasets", "delete", "shapes", code=2)
    assert error.startswith("error:") and "cannot be deleted" in error


def test_bad_input_exits_2_with_one_line(run, tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("cat/ok.png", b"x")
        archive.writestr("../escape.png", b"x")
    error = run("datasets", "add", str(evil), "--name", "evil", code=2)
    assert error.startswith("error:") and len(error.strip().splitlines()) == 1
    assert run("models", "show", "99", code=2).startswith("error: model 99 not found")
    assert "epochs" in run("train", "1", "shapes", "--epochs", "0", code=2)
    assert run("models", "upload", str(tmp_path / "nope.keras"), "--name", "x", code=2).startswith("error:")


def test_models_train_evaluate_leaderboard(run, shapes_folder: Path, tmp_path: Path) -> None:
    run("datasets", "add", str(shapes_folder), "--name", "shapes")
    created = as_json(
        run(
            "models",
            "create",
            "--name",
            "cnn",
            "--architecture",
            "small_cnn",
            "--weights",
            "none",
            "--filters",
            "2",
            "--json",
        )
    )
    model_id = str(created["id"])
    assert created["kind"] == "feature_vector"
    error = run(
        "models", "create", "--name", "m", "--architecture", "small_cnn", "--weights", "imagenet", code=2
    )
    assert "weights" in error
    trained = as_json(
        run(
            "train",
            model_id,
            "shapes",
            "--epochs",
            "2",
            "--decision",
            "keep_both",
            "--name",
            "cnn-shapes",
            "--json",
        )
    )
    assert trained["training"]["status"] == "kept_both" and len(trained["training"]["epochs"]) == 2
    child = str(trained["model"]["id"])
    evaluation = as_json(run("evaluate", child, "--dataset", "shapes", "--json"))
    assert evaluation["comparable"] and 0 <= evaluation["accuracy"] <= 1
    image = sorted((shapes_folder / "square").glob("*.png"))[0]
    predictions = as_json(run("evaluate", child, str(image), "--top-k", "2", "--json"))
    assert len(predictions["predictions"][0]["top"]) == 2
    assert run("evaluate", child, code=2).startswith("error:")
    board = as_json(run("leaderboard", "shapes", "--json"))
    assert board[0]["model_id"] == int(child) and board[0]["rank"] == 1
    assert "cnn-shapes" in run("leaderboard", "shapes")
    shown = as_json(run("models", "show", child, "--json"))
    assert shown["model"]["parent_id"] == int(model_id)
    assert [t["status"] for t in shown["trainings"]] == ["kept_both"]
    path = Path(as_json(run("models", "download", child, str(tmp_path / "out.keras"), "--json"))["path"])
    assert zipfile.is_zipfile(path)


def test_sharing_through_the_cli(run) -> None:
    created = as_json(
        run(
            "models",
            "create",
            "--name",
            "cnn",
            "--architecture",
            "small_cnn",
            "--weights",
            "none",
            "--filters",
            "2",
            "--json",
        )
    )
    model_id = str(created["id"])
    assert as_json(run("models", "list", "--json", user="bob")) == []
    assert run("models", "show", model_id, user="bob", code=2) == f"error: model {model_id} not found\n"
    run("models", "publish", model_id)
    assert [m["id"] for m in as_json(run("models", "list", "--json", user="bob"))] == [created["id"]]
    assert "only the owner" in run("models", "rename", model_id, "mine", user="bob", code=2)
    run("models", "rename", model_id, "renamed")
    assert as_json(run("models", "show", model_id, "--json", user="bob"))["model"]["name"] == "renamed"
    run("models", "delete", model_id, "--yes")
    assert as_json(run("models", "list", "--json")) == []


def test_upload_refuses_a_lambda_layer(run, tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Lambda(lambda x: x * 2.0),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    path = tmp_path / "lambda.keras"
    model.save(path)
    error = run("models", "upload", str(path), "--name", "evil", code=2)
    assert "Lambda" in error
    assert as_json(run("models", "list", "--json")) == []


def test_demo_runs_to_its_leaderboards(run) -> None:
    text = run("demo", "--shapes-per-class", "12", "--epochs", "2", "--digits-limit", "150")
    assert "leaderboard: shapes" in text and "leaderboard: digits" in text
    assert "shapes-cnn on digits" in text
    again = run("demo", "--shapes-per-class", "12", "--epochs", "2", "--digits-limit", "150")
    assert "exists already" in again


def test_a_config_file_sets_the_catalogs_limits(tmp_path: Path) -> None:
    config = tmp_path / "headstart_config.json"
    config.write_text(json.dumps({"Catalog": {"max_model_params": 10}}))
    args = ["--home", str(tmp_path / "home"), "--config", str(config), "models", "create", "--name", "m"]
    args += ["--architecture", "small_cnn", "--weights", "none"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and result.stderr.rstrip().endswith("over the limit of 10")
    missing = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.json"), "datasets", "list"])
    assert missing.exit_code == 2


def test_bad_images_fail_the_ingest_or_are_skipped_on_request(
    run, shapes_folder: Path, tmp_path: Path
) -> None:
    from tests.kernels.test_images import huge_bilevel_png

    upload = tmp_path / "mixed.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for label in ("circle", "square", "triangle"):
            for image in sorted((shapes_folder / label).glob("*.png"))[:4]:
                archive.write(image, f"{label}/{image.name}")
        archive.writestr("circle/empty.png", b"")
        archive.writestr("square/notes.jpg", b"just some text")
        archive.writestr("triangle/huge.png", huge_bilevel_png(20_000, 20_000))
    error = run("datasets", "add", str(upload), "--name", "mixed", code=2)
    assert error.startswith("error: 3 of 15 files are not usable images")
    for name in ("circle/empty.png", "square/notes.jpg", "triangle/huge.png"):
        assert name in error
    assert "20000x20000" in error
    assert as_json(run("datasets", "list", "--json")) == []
    added = as_json(run("datasets", "add", str(upload), "--name", "mixed", "--skip-invalid", "--json"))
    assert sorted(s["file"] for s in added["skipped"]) == [
        "circle/empty.png",
        "square/notes.jpg",
        "triangle/huge.png",
    ]
    assert sum(added["counts"].values()) == 12
