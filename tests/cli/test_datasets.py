"""`headstart datasets`: add with each option, refusals in one line, honest splits, list, show, no delete."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import Shared
from tests.cli.harness import headstart, headstart_many
from tests.conftest import fashion_mnist_dir
from tests.kernels.engine.test_images import huge_bilevel_png

BAD_FILES = {
    "circle/empty.png": "empty file",
    "square/notes.jpg": "not an image",
    "triangle/huge.png": "20000x20000",
}


@pytest.fixture(scope="module")
def mixed_zip(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 good images, 4 per shape, and 3 that are not usable."""
    upload = tmp_path_factory.mktemp("mixed") / "mixed.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for label in ("circle", "square", "triangle"):
            for image in sorted((shapes_folder / label).glob("*.png"))[:4]:
                archive.write(image, f"{label}/{image.name}")
        archive.writestr("circle/empty.png", b"")
        archive.writestr("square/notes.jpg", b"just some text")
        archive.writestr("triangle/huge.png", huge_bilevel_png(20_000, 20_000))
    return upload


def test_bad_images_are_refused_in_one_line_or_skipped_on_request(mixed_zip: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    refused = headstart("datasets", "add", mixed_zip, "--name", "mixed", home=home, code=2).error
    assert refused.startswith("error: 3 of 15 files are not usable images: ")
    for name, reason in BAD_FILES.items():
        assert f"{name} (" in refused and reason in refused
    # With --json the error is the service's error body, on stderr, with every file and its reason.
    as_json = headstart("datasets", "add", mixed_zip, "--name", "mixed", "--json", home=home, code=2)
    body = json.loads(as_json.stderr)
    assert as_json.stdout == "" and body["error"] == "invalid"
    assert body["detail"].startswith("3 of 15 files are not usable images")
    assert {item["file"] for item in body["items"]} == set(BAD_FILES)
    assert headstart("datasets", "list", "--json", home=home).json == []  # nothing changed

    added = headstart(
        *("datasets", "add", mixed_zip, "--name", "mixed", "--skip-invalid", "--resize-policy", "pad"),
        *("--description", "shapes with a few bad files", "--json"),
        home=home,
        user="bob",
    ).json
    assert sorted(s["file"] for s in added["skipped"]) == sorted(BAD_FILES)
    assert sum(added["counts"].values()) == 12
    assert (added["name"], added["resize_policy"], added["created_by"]) == ("mixed", "pad", "bob")
    assert added["description"] == "shapes with a few bad files"
    shown = headstart("datasets", "show", "mixed", "--json", home=home).json
    assert shown == added


def test_an_archive_that_escapes_its_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("cat/ok.png", b"x")
        archive.writestr("../escape.png", b"x")
    error = headstart("datasets", "add", evil, "--name", "evil", home=tmp_path / "home", code=2).error
    assert error.startswith("error:") and "escape.png" in error
    bad_policy = headstart("datasets", "add", evil, "--name", "e", "--resize-policy", "zoom", code=2).error
    assert "zoom" in bad_policy and "center_crop" in bad_policy


def test_list_show_and_no_delete(shared: Shared) -> None:
    listed, by_id, by_name, text, deleted, deleted_json = headstart_many(
        [
            ["datasets", "list", "--json"],
            ["datasets", "show", str(shared.dataset["id"]), "--json"],
            ["datasets", "show", "shapes", "--json"],
            ["datasets", "list"],
            ["datasets", "delete", "shapes"],
            ["datasets", "delete", "shapes", "--json"],
        ],
        home=shared.home,
        code=None,
    )
    assert [d["id"] for d in listed.json] == [shared.dataset["id"]]
    assert by_id.json == by_name.json and by_name.json["labels"] == shared.dataset["labels"]
    assert text.stdout.splitlines()[0].split() == ["ID", "NAME", "LABELS", "COUNTS", "CREATED_BY"]
    assert deleted.code == 2 and deleted.error.startswith("error:") and "cannot be deleted" in deleted.error
    assert deleted_json.code == 2 and json.loads(deleted_json.stderr)["error"] == "conflict"
    assert headstart("datasets", "show", "shapes", "--json", home=shared.home).json == by_name.json


def test_fashion_mnist_ingests_with_val_and_test_for_every_label(tmp_path: Path) -> None:
    from headstart.kernels.engine.demo_data import write_fashion

    folder = write_fashion(tmp_path / "fashion", per_class=20, seed=3, directory=fashion_mnist_dir())
    home = tmp_path / "home"
    added = headstart("datasets", "add", folder, "--name", "fashion", "--json", home=home).json
    words = [
        "t-shirt",
        "trouser",
        "pullover",
        "dress",
        "coat",
        "sandal",
        "shirt",
        "sneaker",
        "bag",
        "ankle-boot",
    ]
    assert added["labels"] == sorted(words) and added["split_policy"] == "stratified-hash"
    # 20 images a label: two each to val and test.
    assert added["counts"] == {"train": 160, "val": 20, "test": 20}
    stored = home / "store" / "datasets" / str(added["id"])
    for split in ("val", "test"):
        per_label = np.bincount(np.load(stored / f"{split}-labels.npy"), minlength=10)
        assert per_label.tolist() == [2] * 10, split


def assert_nothing_stored(home: Path) -> None:
    assert headstart("datasets", "list", "--json", home=home).json == []
    assert list((home / "store" / "datasets").iterdir()) == []
    assert list((home / "store" / "tmp").iterdir()) == []


def test_an_upload_without_a_test_split_is_refused_in_one_line(shapes_folder: Path, tmp_path: Path) -> None:
    few = tmp_path / "few.zip"
    with zipfile.ZipFile(few, "w") as archive:
        for label, count in (("cat", 2), ("dog", 1)):
            for image in sorted((shapes_folder / "circle").glob("*.png"))[:count]:
                archive.write(image, f"{label}/{image.name}")
    home = tmp_path / "home"
    headstart("datasets", "list", home=home)  # the catalog exists before the refusal
    error = headstart("datasets", "add", few, "--name", "few", home=home, code=2).error
    assert error == (
        "error: the test split would be empty: no label has 3 different images, the fewest that give "
        "one to train, val and test (cat: 2, dog: 1)"
    )
    assert_nothing_stored(home)

    no_test = tmp_path / "no-test"
    for split in ("train", "val"):
        for label in ("circle", "square"):
            for image in sorted((shapes_folder / label).glob("*.png"))[:3]:
                (no_test / split / label).mkdir(parents=True, exist_ok=True)
                (no_test / split / label / image.name).write_bytes(image.read_bytes())
    error = headstart("datasets", "add", no_test, "--name", "no-test", home=home, code=2).error
    assert error.startswith(
        "error: the test split would be empty: the upload's test/ folder holds no usable image"
    )
    assert "\n" not in error
    assert_nothing_stored(home)
