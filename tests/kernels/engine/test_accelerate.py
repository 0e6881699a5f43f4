"""The compiled fixed-shape forward against a plain model(x) call, on CPU with a tiny real model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine.accelerate import CompiledForward, compiled_forward, with_precision
from headstart.kernels.engine.architectures import build_model
from headstart.kernels.engine.features import FeatureCache
from headstart.kernels.engine.shards import ShardWriter, SplitReader
from headstart.kernels.errors import Invalid


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return build_model("small_cnn", labels=None, weights=None, filters=2)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(7, 224, 224, 3), dtype=np.uint8)


def plain(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))


def test_padded_last_batch_matches_a_plain_call_and_traces_once(model, images) -> None:
    forward = CompiledForward(model, batch_size=3)
    assert forward.precision == "float32"  # no GPU here, so no mixed precision by default
    outputs = list(forward.stream([images]))
    assert [len(rows) for rows in outputs] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate(outputs), plain(model, images), rtol=1e-5, atol=1e-6)
    assert forward.traces == 1


def test_uneven_incoming_batches_never_retrace(model, images) -> None:
    forward = CompiledForward(model, batch_size=4)
    incoming = [images[:1], images[1:6], images[6:]]
    outputs = list(forward.stream(incoming))
    # Each incoming batch is cut at batch_size; short pieces are padded, never traced at their length.
    assert [len(rows) for rows in outputs] == [1, 4, 1, 1]
    np.testing.assert_allclose(np.concatenate(outputs), plain(model, images), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(forward(images[2:4]), plain(model, images[2:4]), rtol=1e-5, atol=1e-6)
    assert forward.traces == 1


def test_only_uint8_batches_of_the_input_shape_are_staged(model, images) -> None:
    forward = CompiledForward(model, batch_size=4)
    with pytest.raises(Invalid, match="uint8"):
        forward.stage(images[:2].astype("float32"))
    with pytest.raises(Invalid, match="1 to 4 rows"):
        forward.stage(images[:5])
    with pytest.raises(Invalid, match="uint8"):
        forward.stage(images[:2, :100])
    assert forward.traces == 0


def test_mixed_precision_runs_a_copy_and_leaves_the_model_alone(model, images) -> None:
    copy = with_precision(model, "mixed_bfloat16")
    assert {layer.compute_dtype for layer in copy.layers} == {"bfloat16"}
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    forward = CompiledForward(model, batch_size=4, precision="mixed_bfloat16")
    got = np.concatenate(list(forward.stream([images])))
    expected = plain(model, images)
    assert got.dtype == np.float32
    assert not np.array_equal(got, expected)  # it really computed in bfloat16
    np.testing.assert_allclose(got, expected, rtol=0.05, atol=0.05 * np.abs(expected).max())
    with pytest.raises(Invalid, match="precision"):
        with_precision(model, "int8")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_later_weight_changes_are_seen(images, precision: str) -> None:
    keras.utils.set_random_seed(4)
    changing = build_model("small_cnn", labels=None, weights=None, filters=2)
    forward = CompiledForward(changing, batch_size=4, precision=precision)
    before = np.concatenate(list(forward.stream([images])))
    conv = changing.get_layer("conv4")
    kernel, bias = conv.get_weights()
    conv.set_weights([2 * kernel, bias + 1.0])
    after = np.concatenate(list(forward.stream([images])))
    tolerance = 1e-5 if precision == "float32" else 0.05
    np.testing.assert_allclose(after, plain(changing, images), rtol=tolerance, atol=tolerance)
    assert np.abs(after - before).max() > 0.5
    assert forward.traces == 1


def test_recent_compiled_forwards_are_reused(model) -> None:
    first = compiled_forward(model, batch_size=5)
    assert compiled_forward(model, batch_size=5) is first
    assert compiled_forward(model, batch_size=6) is not first
    keras.utils.set_random_seed(5)
    other = build_model("small_cnn", labels=None, weights=None, filters=2)
    assert compiled_forward(other, batch_size=5).source is other


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> SplitReader:
    """Eleven images in shards of four, so that batches of three straddle shards and end short."""
    folder = tmp_path_factory.mktemp("shards")
    writer = ShardWriter(folder, "train", shard_size=4)
    rng = np.random.default_rng(1)
    for index in range(11):
        writer.append(rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8), index % 3)
    return SplitReader(folder, "train", 11, writer.close())


def test_feature_cache_gives_the_same_features_accelerated(tmp_path: Path, model, split) -> None:
    cache = FeatureCache(tmp_path / "features", tmp_path / "tmp")
    before = cache.compute(model, split, "plain", 1, "train", batch_size=3, accelerated=False)
    done: list[int] = []
    after = cache.compute(
        model, split, "fast", 1, "train", batch_size=3, progress=done.append, accelerated=True
    )
    assert done == [3, 3, 3, 2]
    assert after.dtype == before.dtype
    np.testing.assert_allclose(
        np.asarray(after, np.float32), np.asarray(before, np.float32), rtol=1e-3, atol=1e-6
    )
    # A second split over the same body reuses the compiled function.
    cache.compute(model, split, "fast", 1, "val", batch_size=3, accelerated=True)
    assert compiled_forward(model, batch_size=3).traces == 1
    assert list((tmp_path / "tmp").iterdir()) == []
