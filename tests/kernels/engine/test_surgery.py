"""Sequential surgery on tiny real Keras models."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine.surgery import (
    INPUT_SHAPE,
    as_sequential,
    attach_head,
    body_fingerprint,
    copy_head_weights,
    count_params,
    head_from_features,
    leaf_layers,
    model_kind,
    set_trainable,
    split_model,
)
from headstart.kernels.errors import Invalid

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, *INPUT_SHAPE)).astype("float32")


def tiny_classifier(n_labels: int = 3) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(2, 3, strides=8),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(4, 3, strides=4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(n_labels, activation="softmax"),
        ]
    )


def tiny_functional_features() -> keras.Model:
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(4, 3, strides=16)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def predict(model: keras.Model, x: np.ndarray = IMAGES) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_sequential_with_the_contract_passes_through() -> None:
    model = tiny_classifier()
    assert as_sequential(model) is model


def test_sequential_with_flexible_spatial_dims_is_pinned_to_224() -> None:
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(2, 3, strides=16),
            keras.layers.GlobalMaxPooling2D(),
        ]
    )
    wrapped = as_sequential(model)
    assert tuple(wrapped.inputs[0].shape) == (None, *INPUT_SHAPE)
    assert wrapped.layers == model.layers
    np.testing.assert_allclose(predict(wrapped), predict(model), rtol=1e-6)


def test_functional_feature_model_is_wrapped() -> None:
    functional = tiny_functional_features()
    wrapped = as_sequential(functional)
    assert isinstance(wrapped, keras.Sequential)
    assert wrapped.layers == [functional]
    assert model_kind(wrapped) == "feature_vector"
    np.testing.assert_allclose(predict(wrapped), predict(functional), rtol=1e-6)


def test_functional_classifier_is_wrapped_with_its_head_last() -> None:
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=16)(inputs))
    dense = keras.layers.Dense(5, activation="softmax")
    functional = keras.Model(inputs, dense(x))
    wrapped = as_sequential(functional)
    assert wrapped.layers[-1] is dense
    assert model_kind(wrapped) == "classifier"
    np.testing.assert_allclose(predict(wrapped), predict(functional), rtol=1e-6)
    body, head = split_model(wrapped)
    assert head is dense
    assert tuple(body.outputs[0].shape) == (None, 4)


def test_two_input_model_is_refused() -> None:
    a, b = keras.Input(INPUT_SHAPE), keras.Input(INPUT_SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    with pytest.raises(Invalid, match="2 inputs"):
        as_sequential(keras.Model([a, b], x))


def test_two_output_model_is_refused() -> None:
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    with pytest.raises(Invalid, match="2 outputs"):
        as_sequential(keras.Model(inputs, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)]))


@pytest.mark.parametrize("shape", [(128, 128, 3), (224, 224, 1), (10,)])
def test_wrong_input_shape_is_refused(shape: tuple[int, ...]) -> None:
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs) if len(shape) == 3 else inputs
    with pytest.raises(Invalid, match="input has shape"):
        as_sequential(keras.Model(inputs, keras.layers.Dense(2)(x)))


def test_subclassed_model_is_refused() -> None:
    class Custom(keras.Model):
        def call(self, x: object) -> object:
            return x

    with pytest.raises(Invalid, match="subclassed"):
        as_sequential(Custom())


def test_model_kind() -> None:
    assert model_kind(tiny_classifier()) == "classifier"
    assert model_kind(tiny_functional_features()) == "feature_vector"
    relu_top = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert model_kind(relu_top) == "feature_vector"
    image_out = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Conv2D(2, 1, activation="softmax")])
    with pytest.raises(Invalid, match="vector per image"):
        model_kind(image_out)


def test_split_classifier_shares_layers() -> None:
    model = tiny_classifier()
    body, head = split_model(model)
    assert head is model.layers[-1]
    assert body.layers == model.layers[:-1]
    assert all(a is b for a, b in zip(body.layers, model.layers, strict=False))
    assert tuple(body.outputs[0].shape) == (None, 4)
    features = predict(body)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(head(features)), predict(model), rtol=1e-5)


def test_split_feature_vector_is_all_body() -> None:
    model = as_sequential(tiny_functional_features())
    body, head = split_model(model)
    assert body is model
    assert head is None


def test_attach_fresh_head() -> None:
    body, _ = split_model(tiny_classifier())
    model = attach_head(body, 5)
    assert tuple(model.outputs[0].shape) == (None, 5)
    assert model.layers[-1].name == "head"
    assert model_kind(model) == "classifier"
    assert all(a is b for a, b in zip(model.layers[:-1], body.layers, strict=True))
    assert predict(model).shape == (2, 5)


def test_attach_given_head_and_refuse_wrong_size() -> None:
    model = tiny_classifier(3)
    body, head = split_model(model)
    again = attach_head(body, 3, head)
    assert again.layers[-1] is head
    np.testing.assert_allclose(predict(again), predict(model), rtol=1e-6)
    with pytest.raises(Invalid, match="3 outputs but there are 4 labels"):
        attach_head(body, 4, head)


def test_head_from_features_copies_the_head() -> None:
    model = tiny_classifier(3)
    body, head = split_model(model)
    features = predict(body)
    small = head_from_features(4, 3, head)
    assert tuple(small.inputs[0].shape) == (None, 4)
    np.testing.assert_allclose(predict(small, features), predict(model), rtol=1e-5)
    before = [w.copy() for w in head.get_weights()]
    small.layers[-1].set_weights([w + 1.0 for w in small.layers[-1].get_weights()])
    assert all(np.array_equal(a, b) for a, b in zip(before, head.get_weights(), strict=True))
    copy_head_weights(small, head)
    np.testing.assert_allclose(head.get_weights()[1], before[1] + 1.0)


def test_head_from_features_fresh_and_mismatch() -> None:
    fresh = head_from_features(8, 2)
    assert tuple(fresh.outputs[0].shape) == (None, 2)
    # A fresh head starts at zero: every label alike, whatever the features.
    assert not any(w.any() for w in fresh.layers[-1].get_weights())
    np.testing.assert_allclose(predict(fresh, np.random.default_rng(0).normal(0, 9, (3, 8))), 0.5)
    with pytest.raises(Invalid, match="cannot copy head weights"):
        copy_head_weights(fresh, head_from_features(8, 3))


def _trainable_count(model: keras.Model) -> int:
    return len(model.trainable_weights)


def test_set_trainable_counts() -> None:
    body, _ = split_model(tiny_classifier())
    # leaves: Rescaling, Conv2D, BatchNormalization, Conv2D, GlobalAveragePooling2D
    assert len(leaf_layers(body)) == 5
    set_trainable(body, 0)
    assert _trainable_count(body) == 0
    set_trainable(body, 2)
    assert _trainable_count(body) == 2
    set_trainable(body, 3)
    assert _trainable_count(body) == 2, "BatchNormalization stays frozen"
    set_trainable(body, "all")
    assert _trainable_count(body) == 4
    assert not body.layers[2].trainable
    set_trainable(body, 0)
    assert _trainable_count(body) == 0


def test_set_trainable_flattens_nested_models() -> None:
    inner = tiny_functional_features()
    body = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Rescaling(1.0), inner])
    assert [type(layer).__name__ for layer in leaf_layers(body)] == [
        "Rescaling",
        "Conv2D",
        "GlobalAveragePooling2D",
    ]
    set_trainable(body, 2)
    assert _trainable_count(body) == 2


@pytest.mark.parametrize("bad", [-1, 6, "some", True, 1.5])
def test_set_trainable_refuses_bad_depths(bad: object) -> None:
    body, _ = split_model(tiny_classifier())
    with pytest.raises(Invalid, match="fine_tune_layers"):
        set_trainable(body, bad)  # type: ignore[arg-type]


def test_fingerprint_survives_save_and_load(tmp_path: Path) -> None:
    body, _ = split_model(tiny_classifier())
    path = tmp_path / "body.keras"
    keras.saving.save_model(body, path)
    loaded = keras.saving.load_model(path, compile=False)
    assert body_fingerprint(loaded) == body_fingerprint(body)
    set_trainable(loaded, 1)
    assert body_fingerprint(loaded) == body_fingerprint(body), "trainable flags do not change features"


def test_fingerprint_ignores_generated_names_but_not_weights() -> None:
    first, _ = split_model(tiny_classifier())
    second, _ = split_model(tiny_classifier())
    second.set_weights(first.get_weights())
    assert first.layers[1].name != second.layers[1].name
    assert body_fingerprint(first) == body_fingerprint(second)
    kernel = second.layers[1].kernel
    kernel.assign(kernel + 1e-3)
    assert body_fingerprint(first) != body_fingerprint(second)


def test_fingerprint_sees_architecture_and_topology() -> None:
    def wired(skip_from_input: bool, activation: str | None = None) -> keras.Sequential:
        inputs = keras.Input(INPUT_SHAPE)
        conv1 = keras.layers.Conv2D(3, 1, activation=activation)
        conv2 = keras.layers.Conv2D(3, 1)
        a = conv1(inputs)
        b = conv2(inputs if skip_from_input else a)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
        return keras.Sequential([keras.Input(INPUT_SHAPE), keras.Model(inputs, x)])

    chain, parallel, relu = wired(False), wired(True), wired(False, "relu")
    parallel.set_weights(chain.get_weights())
    relu.set_weights(chain.get_weights())
    assert not np.allclose(predict(chain), predict(parallel))
    prints = {body_fingerprint(chain), body_fingerprint(parallel), body_fingerprint(relu)}
    assert len(prints) == 3


def test_count_params() -> None:
    model = tiny_classifier()
    assert count_params(model) == model.count_params() > 0
    body, head = split_model(model)
    assert count_params(body) + count_params(head) == count_params(model)
