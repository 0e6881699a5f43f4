"""predict_batches against model.predict, on a tiny image model and a feature-input model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from headstart.kernels.engine.inference import predict_batches
from headstart.kernels.errors import Invalid


@pytest.fixture(scope="module")
def image_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(2, 3, strides=8),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(10, 224, 224, 3), dtype=np.uint8)


def test_uneven_batches_match_predict_on_the_whole_array(image_model, images) -> None:
    seen: list[int] = []
    got = predict_batches(
        image_model, [images[:3], images[3:7], images[7:]], batch_size=4, progress=seen.append
    )
    want = image_model.predict(images, verbose=0)
    assert got.dtype == np.float32
    assert got.shape == (10, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Chunks of exactly 4 rows, then the last 2 with padding dropped.
    assert seen == [4, 8, 10]
    # The outputs differ across images, so a shuffled or repeated chunk would fail the comparison.
    assert len({tuple(np.round(row, 6)) for row in got}) == 10


def test_other_incoming_batch_lengths_do_not_trace_again(image_model, images) -> None:
    predict_batches(image_model, [images[:5]], batch_size=4)
    function = image_model.predict_function
    traces = getattr(function, "experimental_get_tracing_count", lambda: 0)()
    predict_batches(image_model, [images[:1], images[1:10], images[:3]], batch_size=4)
    assert image_model.predict_function is function
    # Only TensorFlow counts traces; on other backends the identity check above is what remains.
    assert getattr(function, "experimental_get_tracing_count", lambda: 0)() == traces


def test_a_large_incoming_batch_is_cut_into_chunks(image_model, images) -> None:
    got = predict_batches(image_model, iter([images]), batch_size=3)
    np.testing.assert_allclose(got, image_model.predict(images, verbose=0), atol=1e-5)


def test_feature_input_model() -> None:
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(5)])
    features = np.random.default_rng(3).normal(size=(7, 16)).astype(np.float16)
    got = predict_batches(model, (features[i : i + 2] for i in range(0, 7, 2)), batch_size=3)
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, model.predict(features.astype(np.float32), verbose=0), atol=1e-5)


def test_empty_input_gives_no_rows(image_model) -> None:
    assert predict_batches(image_model, [], batch_size=4).shape == (0, 3)
    empty = np.zeros((0, 224, 224, 3), dtype=np.uint8)
    assert predict_batches(image_model, [empty], batch_size=4).shape == (0, 3)


def test_mixed_batches_and_bad_batch_size_are_refused(image_model, images) -> None:
    with pytest.raises(Invalid):
        predict_batches(image_model, [images[:2], images[2:4].astype(np.float32)], batch_size=4)
    with pytest.raises(Invalid):
        predict_batches(image_model, [images], batch_size=0)
