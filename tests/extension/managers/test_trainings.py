"""Transfer training, the feature cache and decisions (rules 2 and 3), on a real catalog.

Every test runs on SQLite and on PostgreSQL (`catalog` from tests/conftest.py), except those whose
subject is the engine's training rather than what the catalog records (ENGINE_ONLY: SQLite only).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from headstart.kernels.errors import Conflict, Forbidden, Invalid, NotFound
from headstart.kernels.schemas import TrainingConfig
from tests.conftest import staged_leftovers, tiny_model

SHAPE_LABELS = ["circle", "square", "triangle"]
QUICK = TrainingConfig(epochs=2, batch_size=16)
ENGINE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_counted(rate: float, count: int) -> None:
    """An accuracy over `count` images is a whole number of correct ones over that count."""
    correct = rate * count
    assert abs(correct - round(correct)) < 1e-3 * count, f"{rate} is no count of {count}"


def test_frozen_training_uses_the_feature_cache_and_leaves_the_original(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    original = catalog.store.path(f"models/{model.id}/v1/model.keras")
    before = digest(original)
    seen: list[dict] = []
    passes: list[tuple[int, int]] = []
    first = catalog.trainings.start(
        alice, model.id, "shapes", QUICK, on_epoch=seen.append, on_features=lambda *p: passes.append(p)
    )
    images = shapes.counts["train"] + shapes.counts["val"]
    assert passes and passes[-1] == (images, images)
    assert first.status == "candidate"
    assert first.head == "replaced" and first.feature_cache == "miss"
    assert [e.epoch for e in first.epochs] == [1, 2] == [e["epoch"] for e in seen]
    assert [e.model_dump() for e in first.epochs] == seen  # what was reported is what was stored
    for split in ("train", "val"):
        assert any(catalog.store.path("features").rglob(f"{split}.npy"))
    for epoch in first.epochs:
        assert_counted(epoch.accuracy, shapes.counts["train"])
        assert_counted(epoch.val_accuracy, shapes.counts["val"])
    # The best epoch's val figures (the lowest val loss: early stopping, on by default, keeps that
    # epoch's weights) are the candidate head's on the cached val features.
    import keras

    from headstart.kernels.engine.shards import DatasetReader

    head = keras.saving.load_model(
        catalog.store.path(f"models/{model.id}/candidates/t{first.id}") / "head.keras", compile=False
    )
    [val_features] = catalog.store.path("features").rglob("val.npy")
    features = np.load(val_features).astype(np.float32)
    truth = DatasetReader(catalog.store.path(f"datasets/{shapes.id}")).split("val").labels
    probabilities = np.asarray(head.predict(features, verbose=0))
    assert len(features) == len(truth) == shapes.counts["val"]
    assert QUICK.early_stopping_patience is not None
    best = min(first.epochs, key=lambda e: e.val_loss)
    assert best.val_accuracy == pytest.approx(float(np.mean(probabilities.argmax(axis=1) == truth)))
    picked = probabilities[np.arange(len(truth)), truth]
    assert best.val_loss == pytest.approx(float(-np.mean(np.log(picked))), rel=1e-3)
    passes.clear()
    second = catalog.trainings.start(
        alice, model.id, "shapes", QUICK, on_features=lambda *p: passes.append(p)
    )
    assert second.feature_cache == "hit" and passes == []
    # Rule 3: the original model is untouched by both trainings.
    assert digest(original) == before
    assert catalog.models.get(alice, model.id).version == 1


@ENGINE_ONLY
def test_frozen_candidate_is_a_head_and_a_shared_body(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    training = catalog.trainings.start(alice, model.id, "shapes", QUICK)
    folder = catalog.store.path(f"models/{model.id}/candidates/t{training.id}")
    body_sha = (folder / "body.ref").read_text().strip()
    assert (folder / "head.keras").is_file() and not (folder / "model.keras").exists()
    assert catalog.store.path(f"bodies/{body_sha}.keras").is_file()


def test_update_makes_the_next_version(catalog, alice, shapes, tmp_path: Path) -> None:
    import keras

    model = tiny_model(catalog, alice)
    training = catalog.trainings.start(alice, model.id, "shapes", QUICK)
    updated = catalog.trainings.decide(alice, training.id, "update")
    assert updated.id == model.id and updated.version == 2
    assert updated.kind == "classifier" and updated.labels == SHAPE_LABELS
    assert catalog.trainings.get(alice, training.id).status == "updated"
    assert [v.version for v in catalog.models.versions(alice, model.id)] == [1, 2]
    assert [t.id for t in catalog.trainings.history(alice, model.id)] == [training.id]
    # The assembled download is a normal Keras file that agrees with the catalog's own scoring.
    path = catalog.models.download(alice, model.id, tmp_path / "m.keras")
    loaded = keras.saving.load_model(path)
    assert loaded.output_shape == (None, 3)
    assert catalog.models.download(alice, model.id, tmp_path / "v1.keras", version=1).is_file()
    with pytest.raises(Conflict):
        catalog.trainings.decide(alice, training.id, "discard")


def test_keep_both_creates_a_child_model(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    training = catalog.trainings.start(alice, model.id, "shapes", QUICK)
    child = catalog.trainings.decide(alice, training.id, "keep_both", name="child")
    assert child.id != model.id and child.name == "child"
    assert (child.parent_id, child.parent_version) == (model.id, 1)
    assert catalog.models.get(alice, model.id).version == 1
    assert catalog.trainings.get(alice, training.id).result_model_id == child.id


def test_discard_deletes_the_weights_and_keeps_the_run(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    training = catalog.trainings.start(alice, model.id, "shapes", QUICK)
    folder = catalog.store.path(f"models/{model.id}/candidates/t{training.id}")
    assert catalog.trainings.decide(alice, training.id, "discard") is None
    kept = catalog.trainings.get(alice, training.id)
    assert kept.status == "discarded" and len(kept.epochs) == 2
    assert not folder.exists()
    with pytest.raises(Invalid):
        catalog.trainings.decide(alice, training.id, "maybe")


def test_others_retrain_public_models_but_cannot_update_them(catalog, alice, bob, shapes) -> None:
    model = tiny_model(catalog, alice, public=True)
    training = catalog.trainings.start(bob, model.id, "shapes", QUICK)
    with pytest.raises(Forbidden):
        catalog.trainings.decide(bob, training.id, "update")
    mine = catalog.trainings.decide(bob, training.id, "keep_both")
    assert mine.owner == "bob" and mine.parent_id == model.id and not mine.public
    assert catalog.models.get(alice, model.id).version == 1


@ENGINE_ONLY
def test_head_is_kept_and_reordered_when_labels_match(catalog, alice, shapes) -> None:
    import keras

    model = tiny_model(catalog, alice, labels=["triangle", "circle", "square"])
    old = keras.saving.load_model(catalog.store.path(f"models/{model.id}/v1/model.keras"))
    kernel = old.layers[-1].get_weights()[0]
    config = TrainingConfig(epochs=1, learning_rate=1e-9, optimizer="sgd")
    training = catalog.trainings.start(alice, model.id, "shapes", config)
    assert training.head == "kept"
    folder = catalog.store.path(f"models/{model.id}/candidates/t{training.id}")
    new_kernel = keras.saving.load_model(folder / "head.keras").layers[-1].get_weights()[0]
    # Columns now follow the dataset's order (circle, square, triangle); lr 1e-9 keeps the values.
    np.testing.assert_allclose(new_kernel, kernel[:, [1, 2, 0]], atol=1e-6)


@ENGINE_ONLY
def test_head_is_replaced_when_labels_differ(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice, labels=["cat", "dog"])
    training = catalog.trainings.start(alice, model.id, "shapes", QUICK)
    assert training.head == "replaced"
    assert catalog.trainings.decide(alice, training.id, "update").labels == SHAPE_LABELS


@ENGINE_ONLY
def test_fine_tuning_trains_the_body_and_stores_a_full_model(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    config = TrainingConfig(epochs=1, batch_size=8, fine_tune_layers="all")
    training = catalog.trainings.start(alice, model.id, "shapes", config)
    assert training.feature_cache is None and len(training.epochs) == 1
    folder = catalog.store.path(f"models/{model.id}/candidates/t{training.id}")
    assert (folder / "model.keras").is_file() and not (folder / "body.ref").exists()
    updated = catalog.trainings.decide(alice, training.id, "update")
    versions = catalog.models.versions(alice, model.id)
    assert versions[0].body_sha != versions[1].body_sha
    assert updated.version == 2


def test_a_failed_training_is_recorded_and_leaves_nothing(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    with pytest.raises(Invalid):
        catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=1, fine_tune_layers=999))
    (failed,) = catalog.trainings.list(alice)
    assert failed.status == "failed" and "999" in failed.error
    assert not catalog.store.path(f"models/{model.id}/candidates").exists()
    assert staged_leftovers(catalog.store) == []


def test_bad_training_configs_are_refused() -> None:
    from pydantic import ValidationError

    for bad in (
        {"epochs": 0},
        {"optimizer": "magic"},
        {"learning_rate": -1},
        {"fine_tune_layers": -2},
        {"loss": "mse"},
    ):
        with pytest.raises(ValidationError):
            TrainingConfig(**bad)


@ENGINE_ONLY
def test_early_stopping_ends_a_diverging_run(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    config = TrainingConfig(epochs=30, learning_rate=10.0, optimizer="sgd", early_stopping_patience=1)
    training = catalog.trainings.start(alice, model.id, "shapes", config)
    assert 2 <= len(training.epochs) < 30


def test_a_cancelled_training_stops_after_its_epoch_and_leaves_nothing(catalog, alice, bob, shapes) -> None:
    model = tiny_model(catalog, alice, public=True)
    started: list[int] = []

    def cancel_at_second(message: dict) -> None:
        if message.get("event") == "epoch" and message["epoch"]["epoch"] == 2:
            catalog.trainings.cancel(alice, started[0])

    # A head on cached features fits an epoch in milliseconds: one image a batch and no early
    # stopping keep this one going for seconds, long past the stop.
    config = TrainingConfig(epochs=1000, batch_size=1, early_stopping_patience=None)
    training = catalog.trainings.begin(alice, model.id, "shapes", config, watch=cancel_at_second)
    started.append(training.id)
    assert training.status == "running" and training.epochs == []
    with pytest.raises(NotFound):
        catalog.trainings.cancel(bob, training.id)
    catalog.jobs.wait(training.job.id)
    ended = catalog.trainings.get(alice, training.id)
    # The worker sees the stop at its next batch, a moment after the service heard of epoch 2.
    assert ended.status == "cancelled" and 2 <= len(ended.epochs) < 1000
    assert ended.job.state == "cancelled" and ended.error is None
    assert not catalog.store.path(f"models/{model.id}/candidates").exists()
    with pytest.raises(Conflict):
        catalog.trainings.cancel(alice, training.id)


def test_trainings_cut_off_by_a_stop_are_marked_failed(db_url, shapes_folder, tmp_path) -> None:
    """Without a runner that still has its job, a restart fails the training: nothing stays running."""
    from headstart.extension.manager import Catalog
    from headstart.extension.managers.jobs import LOST

    home = str(tmp_path / "cut-off")
    # The command line's runner: its jobs end with the process, so a restart finds none of them.
    before = Catalog(home=home, db_url=db_url)
    owner = before.user("alice")
    before.datasets.add(owner, shapes_folder, name="shapes")
    model = tiny_model(before, owner)
    cut_off = before.trainings.begin(owner, model.id, "shapes", TrainingConfig(epochs=200, batch_size=4))
    assert cut_off.job is not None and cut_off.job.state in ("queued", "running")
    restarted = Catalog(home=home, db_url=db_url)
    assert restarted.jobs.reattach() == (0, 1)
    failed = restarted.trainings.get(owner, cut_off.id)
    assert failed.status == "failed" and failed.error == LOST
    assert failed.job is not None and (failed.job.state, failed.job.reason) == ("failed", LOST)
    assert restarted.jobs.reattach() == (0, 0)
    # The old process's job, still running, is stopped; ending after its loss, it leaves nothing.
    before.jobs.cancel(cut_off.job)
    before.close()
    assert restarted.trainings.get(owner, cut_off.id).status == "failed"
    assert not restarted.store.path(f"models/{model.id}/candidates").exists()
    restarted.close()
