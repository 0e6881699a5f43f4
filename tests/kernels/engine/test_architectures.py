"""The zoo: every architecture builds with the input contract, and its preprocessing matches Keras'."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine.architectures import ARCHITECTURES, build_model
from headstart.kernels.engine.keras_file import save_model
from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.engine.surgery import (
    INPUT_SHAPE,
    body_fingerprint,
    model_kind,
    set_trainable,
    split_model,
)
from headstart.kernels.engine.validation import check_config, load_keras_file
from headstart.kernels.errors import Invalid, WeightsUnavailable

LABELS = ["cat", "dog"]
# Small variants keep the suite fast; ResNet50 and EfficientNetB0 have no size knob and build once.
OPTIONS = {
    "mobilenet_v2": {"alpha": 0.35},
    "mobilenet_v3_small": {"alpha": 0.35},
    "mobilenet_v3_large": {"alpha": 0.35},
    "small_cnn": {"filters": 4},
}
IMAGES = np.random.default_rng(3).uniform(0, 255, (2, *INPUT_SHAPE)).astype("float32")
_BUILT: dict[str, keras.Sequential] = {}


def built(name: str) -> keras.Sequential:
    if name not in _BUILT:
        _BUILT[name] = build_model(name, labels=LABELS, weights=None, **OPTIONS.get(name, {}))
    return _BUILT[name]


def output(layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(x))


def test_the_zoo_lists_the_promised_architectures() -> None:
    expected = {
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "resnet50",
        "small_cnn",
    }
    assert expected <= set(ARCHITECTURES)
    for name, arch in ARCHITECTURES.items():
        assert arch.name == name
        assert arch.description and arch.family
        # Every pretrained architecture names its weights file, so the weights folder can hold it.
        assert (arch.weights_file is not None) == arch.pretrained, name
    assert {n for n, a in ARCHITECTURES.items() if a.imagenet_head} == {
        f"efficientnet_lite{i}" for i in range(3)
    }


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_architecture_builds_a_classifier_with_the_contract(name: str) -> None:
    model = built(name)
    assert isinstance(model, keras.Sequential)
    assert tuple(model.inputs[0].shape) == (None, *INPUT_SHAPE)
    assert tuple(model.outputs[0].shape) == (None, len(LABELS))
    assert model_kind(model) == "classifier"
    assert model.layers[-1].name == "head"
    body, head = split_model(model)
    assert head is model.layers[-1]
    assert len(body.outputs[0].shape) == 2
    # Everything the zoo builds must pass the upload allow-list (config.json is this serialization).
    check_config(keras.saving.serialize_keras_object(model))


def test_zoo_model_round_trips_through_a_checked_file(tmp_path: Path) -> None:
    # MobileNetV3 is the zoo's hardest case for the allow-list: its functional graph holds keras ops.
    model = built("mobilenet_v3_small")
    path = tmp_path / "m.keras"
    save_model(model, path, kind="classifier", labels=LABELS)
    loaded = load_keras_file(path, ModelLimits())
    np.testing.assert_allclose(output(loaded, IMAGES), output(model, IMAGES), atol=1e-6)
    assert body_fingerprint(split_model(loaded)[0]) == body_fingerprint(split_model(model)[0])


def test_feature_vector_without_labels() -> None:
    model = build_model("small_cnn", labels=None, weights=None, filters=2)
    assert model_kind(model) == "feature_vector"
    assert tuple(model.outputs[0].shape) == (None, 8)
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [2, 4, 8, 8]


def test_resnet50_preprocessing_equals_keras_caffe_preprocessing() -> None:
    preprocessing = built("resnet50").layers[0]
    expected = keras.applications.resnet50.preprocess_input(IMAGES.copy())
    np.testing.assert_allclose(output(preprocessing, IMAGES), expected, atol=1e-4)


def test_mobilenet_v2_preprocessing_equals_keras_preprocessing() -> None:
    preprocessing = built("mobilenet_v2").layers[0]
    expected = keras.applications.mobilenet_v2.preprocess_input(IMAGES.copy())
    np.testing.assert_allclose(output(preprocessing, IMAGES), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "family_preprocess"),
    [
        ("mobilenet_v3_small", keras.applications.mobilenet_v3.preprocess_input),
        ("efficientnet_b0", keras.applications.efficientnet.preprocess_input),
    ],
)
def test_families_that_take_0_255_get_raw_pixels(name: str, family_preprocess: object) -> None:
    # Their preprocess_input is the identity because the backbone rescales inside itself.
    np.testing.assert_array_equal(family_preprocess(IMAGES.copy()), IMAGES)  # type: ignore[operator]
    model = built(name)
    backbone = model.layers[0]
    assert isinstance(backbone, keras.Model)
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in backbone.layers[:4])


def test_preprocessing_stays_frozen_when_fine_tuning_everything() -> None:
    model = build_model("small_cnn", labels=None, weights=None)
    set_trainable(model, "all")
    assert not model.layers[0].trainable
    resnet_body, _ = split_model(built("resnet50"))
    set_trainable(resnet_body, "all")
    assert resnet_body.layers[0].name == "caffe_preprocessing"
    assert not resnet_body.layers[0].trainable
    assert all(v.path.split("/")[0] != "caffe_preprocessing" for v in resnet_body.trainable_weights)
    set_trainable(resnet_body, 0)


def test_imagenet_weights_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keras reads KERAS_HOME once, at import; point its cache at an empty folder, and any download
    # at a closed port, so the test means the same on a machine that has the weights.
    # The weights folder defaults to the same cache, through $KERAS_HOME.
    monkeypatch.setattr(keras.src.backend.config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    with pytest.raises(WeightsUnavailable, match="weights=None") as caught:
        build_model("mobilenet_v2", labels=LABELS, alpha=0.35)
    assert isinstance(caught.value, Invalid)
    assert (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5 is not in the weights folder"
        in str(caught.value)
    )


def test_alpha_without_imagenet_weights_is_invalid_not_unavailable() -> None:
    with pytest.raises(Invalid, match="mobilenet_v3_small") as caught:
        build_model("mobilenet_v3_small", labels=None, weights="imagenet", alpha=0.35)
    assert not isinstance(caught.value, WeightsUnavailable)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "vgg16", "labels": None, "weights": None}, "unknown architecture 'vgg16'"),
        ({"architecture": "small_cnn", "labels": None}, "no pretrained weights"),
        ({"architecture": "small_cnn", "labels": [], "weights": None}, "must not be empty"),
        ({"architecture": "small_cnn", "labels": ["a", "b", "a"], "weights": None}, "repeated: a"),
        ({"architecture": "small_cnn", "labels": ["a", ""], "weights": None}, "non-empty string"),
        ({"architecture": "small_cnn", "labels": None, "weights": None, "alpha": 0.5}, "does not take"),
        ({"architecture": "small_cnn", "labels": None, "weights": None, "filters": 0}, "filters must be"),
        ({"architecture": "resnet50", "labels": None, "weights": "/tmp/w.h5"}, "weights must be"),
        ({"architecture": "small_cnn", "labels": None, "weights": None, "seed": -1}, "seed must be"),
        ({"architecture": "small_cnn", "labels": None, "weights": None, "seed": 2**32}, "seed must be"),
        (
            {"architecture": "mobilenet_v2", "labels": None, "weights": None, "imagenet_head": True},
            "mobilenet_v2 comes without its ImageNet head here; efficientnet_lite0, efficientnet_lite1",
        ),
        (
            {"architecture": "efficientnet_lite0", "labels": ["a"], "imagenet_head": True},
            "give labels or the ImageNet head, not both",
        ),
        (
            {"architecture": "efficientnet_lite0", "labels": None, "weights": None, "imagenet_head": True},
            "cannot start from weights=None",
        ),
    ],
)
def test_bad_requests_are_invalid(kwargs: dict, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        build_model(**kwargs)


@pytest.mark.parametrize("architecture", ["small_cnn", "mobilenet_v3_small"])
def test_a_seed_repeats_the_starting_weights_and_another_seed_changes_them(architecture: str) -> None:
    def build(seed: int) -> list[np.ndarray]:
        options = OPTIONS[architecture]
        return build_model(architecture, labels=LABELS, weights=None, seed=seed, **options).get_weights()

    first, again, other = build(5), build(5), build(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    drawn = [(a, b) for a, b in zip(first, other, strict=True) if np.unique(a).size > 1]
    assert drawn and not any(np.array_equal(a, b) for a, b in drawn)


def test_schemas_name_every_architecture_of_the_zoo() -> None:
    from headstart.kernels.engine.architectures import ARCHITECTURES
    from headstart.kernels.schemas import ARCHITECTURE_NAMES

    assert sorted(ARCHITECTURE_NAMES) == sorted(ARCHITECTURES)


def test_every_architecture_has_a_builder_and_the_zoo_needs_no_keras() -> None:
    import subprocess
    import sys

    from headstart.kernels.engine.architectures import BUILDERS

    assert set(BUILDERS) == set(ARCHITECTURES)
    code = (
        "import sys; from headstart.kernels.engine.zoo import check_request;"
        "check_request('small_cnn', labels=['a'], weights=None, seed=0, imagenet_head=False, options={});"
        "print('keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
