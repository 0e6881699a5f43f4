"""Saving .keras files with the headstart.json member, and reading it back."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine.keras_file import read_metadata, save_model
from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.engine.surgery import INPUT_SHAPE, split_model
from headstart.kernels.engine.validation import inspect_keras_file, load_keras_file
from headstart.kernels.errors import Invalid

LABELS = ["cat", "dog", "fox"]


def tiny_classifier() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(2, 3, strides=16),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(LABELS), activation="softmax"),
        ]
    )


def test_saved_file_loads_anywhere_and_passes_validation(tmp_path: Path) -> None:
    model = tiny_classifier()
    path = tmp_path / "model.keras"
    size = save_model(model, path, kind="classifier", labels=LABELS)
    assert size == path.stat().st_size
    assert read_metadata(path) == {
        "kind": "classifier",
        "labels": LABELS,
        "input": {"shape": [224, 224, 3], "range": [0, 255], "dtype": "uint8-as-float"},
    }
    x = np.random.default_rng(2).uniform(0, 255, (2, *INPUT_SHAPE)).astype("float32")
    plain = keras.saving.load_model(path)
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert inspect_keras_file(path, ModelLimits()).params == model.count_params()
    checked = load_keras_file(path, ModelLimits())
    np.testing.assert_allclose(checked.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"], "no temporary file is left behind"


def test_feature_vector_is_saved_without_labels(tmp_path: Path) -> None:
    body, _ = split_model(tiny_classifier())
    path = tmp_path / "body.keras"
    save_model(body, path, kind="feature_vector", labels=None)
    metadata = read_metadata(path)
    assert metadata is not None
    assert metadata["kind"] == "feature_vector"
    assert metadata["labels"] is None


def test_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    save_model(tiny_classifier(), path, kind="classifier", labels=LABELS)
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize(
    ("kind", "labels", "message"),
    [
        ("classifier", ["a", "b"], "3 outputs but 2 labels"),
        ("classifier", None, "3 outputs but 0 labels"),
        ("feature_vector", None, "is a classifier, not a feature_vector"),
        ("regressor", None, "kind must be one of"),
    ],
)
def test_metadata_must_match_the_model(
    tmp_path: Path, kind: str, labels: list[str] | None, message: str
) -> None:
    path = tmp_path / "model.keras"
    with pytest.raises(Invalid, match=message):
        save_model(tiny_classifier(), path, kind=kind, labels=labels)
    assert not path.exists()


def test_feature_vector_with_labels_is_refused(tmp_path: Path) -> None:
    body, _ = split_model(tiny_classifier())
    with pytest.raises(Invalid, match="has no labels"):
        save_model(body, tmp_path / "body.keras", kind="feature_vector", labels=["a"])


def test_plain_keras_file_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.keras"
    keras.saving.save_model(tiny_classifier(), path)
    assert read_metadata(path) is None


def test_bad_metadata_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("headstart.json", "[1, 2]")
    with pytest.raises(Invalid, match="JSON object"):
        read_metadata(path)
    path.write_bytes(b"nope")
    with pytest.raises(Invalid, match="not a zip"):
        read_metadata(path)
