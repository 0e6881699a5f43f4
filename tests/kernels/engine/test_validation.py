"""Validation of uploaded .keras files: allow-list, limits and safe loading, on real files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.engine.surgery import INPUT_SHAPE, model_kind
from headstart.kernels.engine.validation import (
    check_config,
    check_model_limits,
    inspect_keras_file,
    load_keras_file,
)
from headstart.kernels.errors import Invalid, TooLarge

LIMITS = ModelLimits()
DESERIALIZED: list[str] = []


@keras.saving.register_keras_serializable(package="headstart_test")
class Echo(keras.layers.Layer):
    """A harmless custom layer that records every attempt to rebuild it from a config."""

    def call(self, x: object) -> object:
        return x

    @classmethod
    def from_config(cls, config: dict) -> Echo:
        DESERIALIZED.append(config["name"])
        return super().from_config(config)


def tiny_model() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Conv2D(2, 3, strides=16),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def save(model: keras.Model, path: Path) -> Path:
    keras.saving.save_model(model, path)
    return path


def rewrite_member(path: Path, name: str, data: bytes) -> None:
    """Replace one member of a zip, keeping the others."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


def edit_config(path: Path, edit: object) -> None:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    edit(config)  # type: ignore[operator]
    rewrite_member(path, "config.json", json.dumps(config).encode())


def test_small_model_is_inspected_and_loaded(tmp_path: Path) -> None:
    model = tiny_model()
    path = save(model, tmp_path / "m.keras")
    facts = inspect_keras_file(path, LIMITS)
    assert facts.size_bytes == path.stat().st_size
    assert facts.params == model.count_params()
    assert facts.config["class_name"] == "Sequential"
    loaded = load_keras_file(path, LIMITS)
    assert isinstance(loaded, keras.Sequential)
    x = np.random.default_rng(1).uniform(0, 255, (1, *INPUT_SHAPE)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_lambda_layer_is_refused_before_loading(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Lambda(lambda x: x * 2.0),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    path = save(model, tmp_path / "lambda.keras")
    with pytest.raises(Invalid, match=r"'Lambda'.*not an allowed"):
        inspect_keras_file(path, LIMITS)
    with pytest.raises(Invalid, match=r"'Lambda'.*not an allowed"):
        load_keras_file(path, LIMITS)


def test_registered_custom_layer_is_refused_before_deserialization(tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input(INPUT_SHAPE), Echo(name="echo"), keras.layers.GlobalAveragePooling2D()]
    )
    path = save(model, tmp_path / "custom.keras")
    DESERIALIZED.clear()
    with pytest.raises(Invalid, match="headstart_test>Echo"):
        load_keras_file(path, LIMITS)
    assert DESERIALIZED == []
    # The same file does load when the check is skipped, so the refusal above came from the allow-list.
    keras.saving.load_model(path, compile=False)
    assert DESERIALIZED == ["echo"]


@pytest.mark.parametrize(
    ("module", "class_name", "registered", "shown"),
    [
        ("keras.layers", "TFSMLayer", None, "TFSMLayer"),
        ("os", "system", None, "system"),
        ("keras.layers", "Dense", "evil>Dense", "evil>Dense"),
        ("keras.src.layers.core.dense", "Dense", None, "Dense"),
    ],
)
def test_objects_outside_the_allow_list_are_refused(
    tmp_path: Path, module: str, class_name: str, registered: str | None, shown: str
) -> None:
    path = save(tiny_model(), tmp_path / "edited.keras")

    def swap(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer.update(module=module, class_name=class_name, registered_name=registered)

    edit_config(path, swap)
    with pytest.raises(Invalid, match=f"'{shown}'"):
        inspect_keras_file(path, LIMITS)


def test_unknown_activation_name_is_refused() -> None:
    config = keras.saving.serialize_keras_object(tiny_model())
    config["config"]["layers"][-1]["config"]["activation"] = "headstart_test>evil"
    with pytest.raises(Invalid, match="activation 'headstart_test>evil'"):
        check_config(config)


def test_compiled_model_is_accepted_and_optimizer_state_not_counted(tmp_path: Path) -> None:
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.zeros((2, *INPUT_SHAPE)), np.zeros(2), verbose=0)
    path = save(model, tmp_path / "compiled.keras")
    assert inspect_keras_file(path, LIMITS).params == model.count_params()
    assert model_kind(load_keras_file(path, LIMITS)) == "classifier"


def test_over_the_byte_limit(tmp_path: Path) -> None:
    path = save(tiny_model(), tmp_path / "m.keras")
    size = path.stat().st_size
    with pytest.raises(TooLarge) as caught:
        inspect_keras_file(path, ModelLimits(max_model_bytes=1000))
    assert "1,000" in str(caught.value)
    assert f"{size:,}" in str(caught.value)


def test_over_the_param_limit(tmp_path: Path) -> None:
    model = tiny_model()
    path = save(model, tmp_path / "m.keras")
    with pytest.raises(TooLarge) as caught:
        inspect_keras_file(path, ModelLimits(max_model_params=10))
    assert "limit of 10" in str(caught.value)
    assert f"{model.count_params():,} parameters" in str(caught.value)


def test_zip_bomb_is_refused_by_declared_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * 2_000_000)
    assert path.stat().st_size < 100_000
    with pytest.raises(TooLarge, match="unpacks to 2,000,"):
        inspect_keras_file(path, ModelLimits(max_model_bytes=1_000_000))


def test_shape_bomb_in_weights_is_counted_from_metadata(tmp_path: Path) -> None:
    path = save(tiny_model(), tmp_path / "m.keras")
    h5_path = tmp_path / "w.h5"
    with h5py.File(h5_path, "w") as weights:
        # Chunked and never written: a trillion floats in a file of a few kilobytes.
        weights.create_dataset("layers/dense/vars/0", shape=(1_000_000, 1_000_000), dtype="f4", chunks=True)
    rewrite_member(path, "model.weights.h5", h5_path.read_bytes())
    with pytest.raises(TooLarge, match="1,000,000,000,000 parameters"):
        inspect_keras_file(path, LIMITS)


def test_links_out_of_the_weights_file_are_refused(tmp_path: Path) -> None:
    path = save(tiny_model(), tmp_path / "m.keras")
    h5_path = tmp_path / "w.h5"
    with h5py.File(h5_path, "w") as weights:
        weights["layers"] = h5py.ExternalLink("/etc/hostname", "/")
    rewrite_member(path, "model.weights.h5", h5_path.read_bytes())
    with pytest.raises(Invalid, match="outside itself"):
        inspect_keras_file(path, LIMITS)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.keras"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(Invalid, match="not a zip"):
        inspect_keras_file(path, LIMITS)


def test_zip_without_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(Invalid, match=r"no config\.json"):
        inspect_keras_file(path, LIMITS)


def test_other_suffix_is_refused(tmp_path: Path) -> None:
    path = save(tiny_model(), tmp_path / "m.keras").rename(tmp_path / "m.h5")
    with pytest.raises(Invalid, match=r"\.keras files"):
        inspect_keras_file(path, LIMITS)


def test_functional_upload_is_wrapped(tmp_path: Path) -> None:
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=16)(inputs))
    path = save(keras.Model(inputs, x), tmp_path / "functional.keras")
    loaded = load_keras_file(path, LIMITS)
    assert isinstance(loaded, keras.Sequential)
    assert model_kind(loaded) == "feature_vector"


def test_two_input_upload_is_refused_after_safe_load(tmp_path: Path) -> None:
    a, b = keras.Input(INPUT_SHAPE), keras.Input(INPUT_SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    path = save(keras.Model([a, b], x), tmp_path / "two.keras")
    inspect_keras_file(path, LIMITS)
    with pytest.raises(Invalid, match="2 inputs"):
        load_keras_file(path, LIMITS)


def test_keras_errors_become_invalid(tmp_path: Path) -> None:
    path = save(tiny_model(), tmp_path / "m.keras")
    edit_config(path, lambda config: config["config"]["layers"][1]["config"].update(filters="many"))
    with pytest.raises(Invalid, match="could not be loaded"):
        load_keras_file(path, LIMITS)


def test_check_model_limits() -> None:
    limits = ModelLimits(max_model_bytes=100, max_model_params=50)
    check_model_limits(50, 100, limits)
    with pytest.raises(TooLarge, match="101 bytes, over the limit of 100"):
        check_model_limits(1, 101, limits)
    with pytest.raises(TooLarge, match="51 parameters, over the limit of 50"):
        check_model_limits(51, 1, limits)
