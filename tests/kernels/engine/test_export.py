"""Exports for TensorFlow's runtimes: each zip opens there, answers as the Keras model does, and
carries the labels in output order."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from headstart.kernels.engine.export import export_model, labels_text
from headstart.kernels.engine.surgery import INPUT_SHAPE
from headstart.kernels.errors import Invalid

LABELS = ["red", "green", "blue"]


def colour_classifier() -> keras.Sequential:
    """A classifier whose top-1 is an image's strongest channel, so that the images differ in it."""
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(3, 3, strides=8, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(LABELS), activation="softmax", name="head"),
        ]
    )
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    kernel[1, 1] = np.eye(3)  # each filter passes one channel through
    model.get_layer("conv").set_weights([kernel, np.zeros(3, np.float32)])
    model.get_layer("head").set_weights([np.eye(3, dtype=np.float32) * 8, np.zeros(3, np.float32)])
    return model


def images() -> np.ndarray:
    """Raw 0-255 RGB: mostly red, mostly green, mostly blue, then noise leaning each way."""
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 60, (6, *INPUT_SHAPE)).astype("float32")
    for number, channel in enumerate([0, 1, 2, 2, 0, 1]):
        batch[number, ..., channel] += 120 + 20 * number
    return batch


def unzipped(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into


def tflite_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # TF 2.21 still ships tf.lite.Interpreter, and warns that LiteRT's package replaces it.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    given, answer = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(answer["index"])


def test_saved_model_and_tflite_answer_as_keras_does_and_carry_the_labels(tmp_path: Path) -> None:
    model, x = colour_classifier(), images()
    expected = model.predict(x, verbose=0)
    assert list(expected.argmax(1)) == [0, 1, 2, 2, 0, 1], "the images differ in their top-1"

    saved = tmp_path / "saved_model.zip"
    size = export_model(model, saved, format="saved_model", kind="classifier", labels=LABELS)
    assert size == saved.stat().st_size
    folder = unzipped(saved, tmp_path / "saved")
    assert (folder / "labels.txt").read_text().splitlines() == LABELS
    assert (folder / "saved_model" / "assets" / "labels.txt").read_text().splitlines() == LABELS
    metadata = json.loads((folder / "headstart.json").read_text())
    assert (metadata["kind"], metadata["labels"], metadata["format"]) == ("classifier", LABELS, "saved_model")
    served = tf.saved_model.load(str(folder / "saved_model")).signatures["serve"]
    answers = list(served(tf.constant(x)).values())
    assert len(answers) == 1
    np.testing.assert_allclose(answers[0].numpy(), expected, atol=1e-5)

    lite = tmp_path / "tflite.zip"
    export_model(model, lite, format="tflite", kind="classifier", labels=LABELS)
    with zipfile.ZipFile(lite) as archive:
        assert sorted(archive.namelist()) == ["headstart.json", "labels.txt", "model.tflite"]
    folder = unzipped(lite, tmp_path / "lite")
    assert (folder / "labels.txt").read_text() == "red\ngreen\nblue\n"
    outputs = tflite_outputs(folder / "model.tflite", x)
    assert list(outputs.argmax(1)) == list(expected.argmax(1))
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lite", "saved", "saved_model.zip", "tflite.zip"]


def test_a_feature_vector_exports_without_labels(tmp_path: Path) -> None:
    body = keras.Sequential([keras.Input(INPUT_SHAPE), *colour_classifier().layers[:-1]])
    x = images()[:2]
    path = tmp_path / "features.zip"
    export_model(body, path, format="tflite", kind="feature_vector", labels=None)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["headstart.json", "model.tflite"]
        assert json.loads(archive.read("headstart.json"))["labels"] is None
        (tmp_path / "model.tflite").write_bytes(archive.read("model.tflite"))
    np.testing.assert_allclose(
        tflite_outputs(tmp_path / "model.tflite", x), body.predict(x, verbose=0), atol=1e-5
    )


def test_labels_that_labels_txt_cannot_hold_are_refused(tmp_path: Path) -> None:
    assert labels_text(None) is None
    with pytest.raises(Invalid, match="line break"):
        export_model(
            colour_classifier(),
            tmp_path / "x.zip",
            format="tflite",
            kind="classifier",
            labels=["a\nb", "c", "d"],
        )
    with pytest.raises(Invalid, match="saved_model, tflite"):
        export_model(colour_classifier(), tmp_path / "x.zip", format="onnx", kind="classifier", labels=LABELS)
    assert list(tmp_path.iterdir()) == []
