"""Shared setup of the CLI tests: real input files, and one catalog for the commands that only read."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.harness import headstart

COVERAGE_TEST = "test_every_option_is_exercised"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The option check reads what every other CLI test ran, so it runs after all of them.
    last = [item for item in items if item.name == COVERAGE_TEST]
    items[:] = [item for item in items if item.name != COVERAGE_TEST] + last


@dataclass(frozen=True)
class Files:
    """The files README's command-line examples name, made for real in one folder."""

    folder: Path
    photos: Path  # photos.zip: cat/ and dog/ images
    model: Path  # my_model.keras: a 2-class softmax classifier without labels of its own
    cat: Path  # cat.jpg
    dog: Path  # dog.png


def save_classifier(path: Path, outputs: int = 2) -> Path:
    """A small real Keras classifier, saved as a .keras file."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(2, 3, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(outputs, activation="softmax"),
        ]
    )
    model.save(path)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    from PIL import Image

    from headstart.kernels.engine.demo_data import write_shapes

    folder = tmp_path_factory.mktemp("readme-files")
    shapes = write_shapes(tmp_path_factory.mktemp("pets-source"), per_class=12, seed=3)
    photos = folder / "photos.zip"
    with zipfile.ZipFile(photos, "w") as archive:
        for shape, label in (("circle", "cat"), ("square", "dog")):
            for image in sorted((shapes / shape).glob("*.png")):
                archive.write(image, f"{label}/{image.name}")
    cat, dog = folder / "cat.jpg", folder / "dog.png"
    Image.open(shapes / "circle" / "0.png").convert("RGB").save(cat, "JPEG")
    Image.open(shapes / "square" / "0.png").save(dog, "PNG")
    return Files(folder, photos, save_classifier(folder / "my_model.keras"), cat, dog)


@dataclass(frozen=True)
class Shared:
    """A catalog for read-only commands: shapes, and a small CNN trained on it (version 2)."""

    home: Path
    dataset: dict
    model: dict
    training: dict


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path) -> Shared:
    home = tmp_path_factory.mktemp("shared") / "home"
    dataset = headstart("datasets", "add", shapes_folder, "--name", "shapes", "--json", home=home).json
    created = headstart(
        *("models", "create", "--name", "cnn", "--architecture", "small_cnn", "--weights", "none"),
        *("--filters", "2", "--labels", ",".join(dataset["labels"]), "--public", "--json"),
        home=home,
        user="alice",
    ).json
    trained = headstart(
        *("train", created["id"], "shapes", "--epochs", "2", "--decision", "update", "--json"),
        home=home,
        user="alice",
    ).json
    return Shared(home, dataset, trained["model"], trained["training"])
