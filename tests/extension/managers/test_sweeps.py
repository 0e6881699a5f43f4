"""Sweeps: many heads in one job on cached features, each run a training with its own candidate.

Every test runs on SQLite and on PostgreSQL (`catalog` from tests/conftest.py).
"""

from __future__ import annotations

import pytest

from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import SweepGrid, TrainingConfig
from tests.conftest import tiny_model

BASE = TrainingConfig(epochs=2, batch_size=16)


def test_a_sweep_trains_every_combination_in_one_job_and_ranks_them(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    grid = SweepGrid(learning_rate=[1e-3, 1e-2], optimizer=["adam", "sgd"], epochs=[2, 3])
    heard: list[tuple[str | None, int, int]] = []
    done = catalog.sweeps.start(
        alice, model.id, "shapes", grid, config=BASE, progress=lambda *step: heard.append(step)
    )
    # The body's one pass, then the epochs of all eight runs, counted together.
    images = shapes.counts["train"] + shapes.counts["val"]
    assert ("features", images, images) in heard and heard[-1] == ("epochs", 20, 20)
    assert done.job.state == "succeeded" and done.job.kind == "sweep"
    assert len(done.runs) == 8 and {run.status for run in done.runs} == {"candidate"}
    configs = {(r.config["learning_rate"], r.config["optimizer"], r.config["epochs"]) for r in done.runs}
    assert configs == {(lr, opt, ep) for lr in (1e-3, 1e-2) for opt in ("adam", "sgd") for ep in (2, 3)}
    for run in done.runs:
        # Each run keeps the base's other fields, its own epochs, and its sweep's one job.
        assert run.config["batch_size"] == 16 and run.sweep_id == done.id
        assert run.job.id == done.job.id
        assert [e.epoch for e in run.epochs] == list(range(1, run.config["epochs"] + 1))
        assert catalog.store.exists(f"models/{model.id}/candidates/t{run.id}/head.keras")
    scores = [run.val_accuracy for run in done.runs]
    assert scores == sorted(scores, reverse=True)
    # The features were computed once, then every head read them.
    assert {run.feature_cache for run in done.runs} == {"miss"}
    assert catalog.sweeps.get(alice, done.id).runs == done.runs
    assert [s.id for s in catalog.sweeps.list(alice)] == [done.id]


def test_each_run_is_decided_like_any_training(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    done = catalog.sweeps.start(alice, model.id, "shapes", {"learning_rate": [1e-3, 5e-2]}, config=BASE)
    best, other = done.runs
    kept = catalog.trainings.decide(alice, best.id, "keep_both", name="best of the sweep")
    catalog.trainings.decide(alice, other.id, "discard")
    assert kept is not None and kept.parent_id == model.id
    assert not catalog.store.exists(f"models/{model.id}/candidates/t{other.id}")
    statuses = {run.id: run.status for run in catalog.sweeps.get(alice, done.id).runs}
    assert statuses == {best.id: "kept_both", other.id: "discarded"}


def test_random_draws_pick_distinct_combinations(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    grid = {"learning_rate": [1e-4, 1e-3, 1e-2, 1e-1], "label_smoothing": [0.0, 0.1, 0.2]}
    done = catalog.sweeps.start(alice, model.id, "shapes", grid, draws=5, config=BASE)
    picked = {(r.config["learning_rate"], r.config["label_smoothing"]) for r in done.runs}
    assert len(done.runs) == len(picked) == 5 and done.draws == 5


@pytest.mark.parametrize(
    ("grid", "draws", "message"),
    [
        ({}, None, "needs at least one list"),
        ({"learning_rate": []}, None, "learning_rate list is empty"),
        ({"learning_rate": [1e-3, 1e-2, 1e-1], "epochs": [1, 2, 3]}, None, "9 heads, over the limit of 8"),
        ({"learning_rate": [1e-3, 1e-2, 1e-1], "epochs": [1, 2, 3]}, 9, "over the limit of 8"),
        ({"learning_rate": [1e-3, 50.0]}, None, "learning_rate value is refused"),
        ({"optimizer": ["adam", "lion"]}, None, "unknown optimizer 'lion'"),
    ],
)
def test_a_bad_grid_is_refused_and_starts_nothing(catalog, alice, shapes, grid, draws, message) -> None:
    catalog.max_sweep_heads = 8
    model = tiny_model(catalog, alice)
    with pytest.raises(Invalid, match=message):
        catalog.sweeps.begin(alice, model.id, "shapes", grid, draws=draws, config=BASE)
    assert catalog.sweeps.list(alice) == [] and catalog.trainings.list(alice) == []
    assert [job.kind for job in catalog.jobs.list(alice)] == ["ingest", "create"]


def test_a_sweep_with_an_unfrozen_body_is_refused(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice)
    config = TrainingConfig(epochs=1, fine_tune_layers=1)
    with pytest.raises(Invalid, match="fine_tune_layers must be 0"):
        catalog.sweeps.begin(alice, model.id, "shapes", {"learning_rate": [1e-3]}, config=config)


def test_another_users_sweep_does_not_exist_for_you(catalog, alice, bob, shapes) -> None:
    model = tiny_model(catalog, alice)
    done = catalog.sweeps.start(alice, model.id, "shapes", {"learning_rate": [1e-3]}, config=BASE)
    with pytest.raises(NotFound):
        catalog.sweeps.get(bob, done.id)
    assert catalog.sweeps.list(bob) == []
