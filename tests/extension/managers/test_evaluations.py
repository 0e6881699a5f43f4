"""Evaluations and leaderboards: platform scores, cached per version, mapped by label name.

Every test runs on SQLite and on PostgreSQL (`catalog` from tests/conftest.py).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Evaluation, Job
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import TrainingConfig
from tests.conftest import run_bounded, tiny_model


def evaluation_rows(catalog) -> list[Evaluation]:
    with transaction(catalog.engine) as session:
        return list(session.exec(select(Evaluation)).all())


def test_split_evaluation_matches_a_plain_keras_prediction(catalog, alice, shapes, tmp_path: Path) -> None:
    import keras

    from headstart.kernels.engine.shards import DatasetReader

    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    evaluation = catalog.evaluations.on_split(alice, model.id, "shapes", "test")
    result = evaluation.result
    test = DatasetReader(catalog.store.path(f"datasets/{shapes.id}")).split("test")
    images, truth = test.read(np.arange(len(test)))
    loaded = keras.saving.load_model(catalog.models.download(alice, model.id, tmp_path))
    predicted = loaded.predict(images, verbose=0).argmax(axis=1)
    assert evaluation.count == len(test) == sum(row["support"] for row in result["per_class"])
    assert evaluation.accuracy == pytest.approx(float(np.mean(predicted == truth)))
    confusion = np.array(result["confusion"])
    assert confusion.sum() == len(test) and np.trace(confusion) == int(np.sum(predicted == truth))
    assert len(result["predictions"]) == len(test)
    assert all(len(p["top"]) == 3 for p in result["predictions"])


def test_scores_are_cached_per_version(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    first = catalog.evaluations.on_split(alice, model.id, "shapes")
    again = catalog.evaluations.on_split(alice, model.id, "shapes")
    assert again.id == first.id and len(evaluation_rows(catalog)) == 1
    catalog.evaluations.leaderboard(alice, "shapes")
    assert len(evaluation_rows(catalog)) == 1
    training = catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=1))
    catalog.trainings.decide(alice, training.id, "update")
    catalog.evaluations.leaderboard(alice, "shapes")
    assert sorted(e.model_version for e in evaluation_rows(catalog)) == [1, 2]


def test_leaderboard_ranks_comparable_models_first(catalog, alice, bob, shapes) -> None:
    trained = tiny_model(catalog, alice, name="trained", public=True)
    training = catalog.trainings.start(
        alice, trained.id, "shapes", TrainingConfig(epochs=15, learning_rate=0.05)
    )
    catalog.trainings.decide(alice, training.id, "update")
    superset = tiny_model(
        catalog, bob, name="superset", labels=["star", "triangle", "square", "circle"], public=True
    )
    partial = tiny_model(catalog, bob, name="partial", labels=["circle", "square"], public=True)
    feature = tiny_model(catalog, bob, name="features", public=True)
    private = tiny_model(catalog, bob, name="hidden")
    board = catalog.evaluations.leaderboard(alice, "shapes")
    by_id = {row.model_id: row for row in board}
    assert private.id not in by_id
    assert by_id[superset.id].comparable and by_id[trained.id].comparable
    assert not by_id[partial.id].comparable and "triangle" in by_id[partial.id].note
    assert not by_id[feature.id].comparable and by_id[feature.id].accuracy is None
    comparable = [row for row in board if row.comparable]
    assert [row.rank for row in comparable] == [1, 2]
    assert comparable[0].accuracy >= comparable[1].accuracy
    assert [row.rank for row in board if not row.comparable] == [None, None]
    assert private.id in {row.model_id for row in catalog.evaluations.leaderboard(bob, "shapes")}


def test_predictions_on_image_files(catalog, alice, shapes_folder: Path, tmp_path: Path) -> None:
    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    files = sorted((shapes_folder / "circle").glob("*.png"))[:3]
    result = catalog.evaluations.on_files(alice, model.id, files, top_k=2)
    assert [p["file"] for p in result["predictions"]] == [f.name for f in files]
    for prediction in result["predictions"]:
        probabilities = [t["probability"] for t in prediction["top"]]
        assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)
    assert result["accuracy"] is None
    text = tmp_path / "fake.jpg"
    text.write_text("hello")
    with pytest.raises(Invalid, match=r"fake\.jpg"):
        catalog.evaluations.on_files(alice, model.id, [files[0], text])
    with pytest.raises(Invalid):
        catalog.evaluations.on_files(alice, model.id, [tmp_path / "missing.png"])
    with pytest.raises(Invalid):
        catalog.evaluations.on_split(alice, model.id, "shapes", "holdout")


def test_predictions_of_a_version_go_to_the_worker_that_keeps_it_loaded(
    catalog, alice, shapes_folder: Path
) -> None:
    from headstart.kernels.store import file_sha256
    from headstart.kernels.tasks.artifacts import KEPT_MODELS

    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    ref = catalog.models.ref(alice, model.id)
    assert ref.content == file_sha256(catalog.store.path(ref.folder) / "model.keras")
    image = sorted((shapes_folder / "circle").glob("*.png"))[0]
    first = catalog.evaluations.on_files(alice, model.id, [image])
    for _ in range(4):
        assert catalog.evaluations.on_files(alice, model.id, [image]) == first
    with transaction(catalog.engine) as session:
        jobs = session.exec(select(Job).where(Job.kind == "evaluate").order_by(Job.id)).all()
    workers = [job.worker for job in jobs]
    assert len(workers) == 5 and len(set(workers)) == 1, workers  # by chance: 1 in 16 on two workers
    # What each worker process keeps (the cache object itself is not sent: it holds a lock).
    kept = catalog.runner.client.run(
        eval, f"__import__({KEPT_MODELS.__module__!r}, fromlist=['_']).KEPT_MODELS.contents()"
    )
    assert ref.content in kept[workers[0]], kept


def test_boards_are_kept_until_models_or_scores_change(catalog, alice, bob, shapes) -> None:
    mine = tiny_model(catalog, alice, name="mine", labels=["circle", "square", "triangle"])
    first = catalog.evaluations.leaderboard(alice, "shapes")
    assert catalog.evaluations.leaderboard(alice, "shapes") is first
    catalog.models.update(alice, mine.id, name="renamed")
    renamed = catalog.evaluations.leaderboard(alice, "shapes")
    assert renamed is not first and [row.model_name for row in renamed] == ["renamed"]
    theirs = tiny_model(catalog, bob, name="theirs", labels=["circle", "square", "triangle"])
    # Any model's change re-ranks (the state is catalog-wide), and bob's private model stays out.
    assert [row.model_name for row in catalog.evaluations.leaderboard(alice, "shapes")] == ["renamed"]
    catalog.models.update(bob, theirs.id, public=True)
    shown = catalog.evaluations.leaderboard(alice, "shapes")
    assert {row.model_name for row in shown} == {"renamed", "theirs"}
    assert [row.model_id for row in catalog.evaluations.leaderboard(bob, "shapes")] == [theirs.id]
    catalog.models.delete(bob, theirs.id)
    assert [row.model_name for row in catalog.evaluations.leaderboard(alice, "shapes")] == ["renamed"]


def test_boards_outlast_ingests_and_scores_on_other_splits_and_datasets(
    catalog, alice, shapes, shapes_folder: Path
) -> None:
    mine = tiny_model(catalog, alice, name="mine", labels=["circle", "square", "triangle"])
    other = tiny_model(catalog, alice, name="other", labels=["circle", "square", "triangle"])
    catalog.evaluations.on_split(alice, other.id, "shapes", "test")
    first = catalog.evaluations.leaderboard(alice, "shapes")
    # An ingest and scores on another split or dataset leave the rows as they were: kept.
    catalog.datasets.add(alice, shapes_folder, name="shapes-again")
    catalog.evaluations.on_split(alice, mine.id, "shapes", "val")
    catalog.evaluations.on_split(alice, mine.id, "shapes-again", "test")
    assert catalog.evaluations.leaderboard(alice, "shapes") is first
    # A change to this board's own scores ranks it again: one gone is pending, then scored anew.
    with transaction(catalog.engine) as session:
        on_board = select(Evaluation).where(
            Evaluation.model_id == mine.id, Evaluation.dataset_id == shapes.id, Evaluation.split == "test"
        )
        session.delete(session.exec(on_board).one())
    gone = catalog.evaluations.leaderboard(alice, "shapes", wait=False)
    assert gone is not first
    assert [row.pending for row in gone if row.model_id == mine.id] == [True]
    scored = catalog.evaluations.leaderboard(alice, "shapes")
    assert [row.pending for row in scored] == [False, False]
    assert {row.model_id: row.count for row in scored}[mine.id] > 0


def test_a_board_with_pending_rows_asks_again_once_their_evaluations_end(catalog, alice, shapes) -> None:
    mine = tiny_model(catalog, alice, name="mine", labels=["circle", "square", "triangle"])
    pending = catalog.evaluations.leaderboard(alice, "shapes", wait=False)
    assert [row.pending for row in pending] == [True]
    assert catalog.evaluations.kept_board(alice, "shapes") is None  # it must ask
    job = catalog.jobs.wait(catalog.evaluations._board(alice, "shapes").pending[0])
    assert job.job.state == "succeeded"
    ranked = catalog.evaluations.leaderboard(alice, "shapes", wait=False)
    assert [(row.model_id, row.pending, row.rank) for row in ranked] == [(mine.id, False, 1)]


def test_one_ranking_serves_every_viewer_their_own_rows_numbered(catalog, alice, bob, shapes) -> None:
    from pydantic import TypeAdapter

    from headstart.kernels.schemas import LeaderboardRow

    labels = ["circle", "square", "triangle"]
    public = tiny_model(catalog, alice, name="public", labels=labels, public=True)
    private = tiny_model(catalog, alice, name="private", labels=labels, seed=1)
    theirs = tiny_model(catalog, bob, name="theirs", labels=labels, seed=2)
    vector = tiny_model(catalog, bob, name="vector", public=True)
    boards = {user.name: catalog.evaluations.leaderboard(user, "shapes") for user in (alice, bob)}
    assert {row.model_id for row in boards["alice"]} == {public.id, private.id, vector.id}
    assert {row.model_id for row in boards["bob"]} == {public.id, theirs.id, vector.id}
    for name, rows in boards.items():
        ranked = [row.rank for row in rows if row.comparable]
        assert ranked == list(range(1, len(ranked) + 1)), name  # numbered among what each sees
        assert [row.rank for row in rows if not row.comparable] == [None], name  # the feature vector
    # Both boards come from one ranking, and each one's JSON is its rows as the API's schema dumps them.
    assert len(catalog.evaluations._rankings) == 1
    rows = TypeAdapter(list[LeaderboardRow])
    for user in (alice, bob):
        body = catalog.evaluations.board(user, "shapes").json
        assert body == rows.dump_json(catalog.evaluations.leaderboard(user, "shapes"))
    # A board asked for gzip makes only its gzip, the same JSON compressed.
    carol = catalog.user("carol")
    zipped = catalog.evaluations.board(carol, "shapes", gzipped=True)
    assert "json" not in vars(zipped)
    assert gzip.decompress(zipped.gzip) == rows.dump_json(catalog.evaluations.leaderboard(carol, "shapes"))


def test_variants_of_one_body_are_scored_in_one_job_with_one_body_pass(catalog, alice, shapes) -> None:
    """A board's unscored variants of one body go in one job: the body runs over the split once."""
    model = tiny_model(catalog, alice)
    swept = catalog.sweeps.start(
        alice, model.id, "shapes", {"learning_rate": [1e-3, 1e-2, 1e-1]}, config=TrainingConfig(epochs=2)
    )
    variants = [
        catalog.trainings.decide(alice, run.id, "keep_both", name=f"variant {n}").id
        for n, run in enumerate(swept.runs)
    ]
    other = tiny_model(catalog, alice, name="other body", labels=["circle", "square", "triangle"], seed=5)
    rows = catalog.evaluations.leaderboard(alice, "shapes")
    scored = {row.model_id: row for row in rows}
    assert all(scored[v].accuracy is not None for v in [*variants, other.id])
    with transaction(catalog.engine) as session:
        jobs = session.exec(select(Job).where(Job.kind == "evaluate")).all()
        grouped = [job.request["models"] for job in jobs if len(job.request["models"]) > 1]
    # The variants' job scored them all on one pass of their body (features cached once per body
    # and split); the other body's model and the feature vector had jobs of their own.
    assert [sorted(m for m, _ in group) for group in grouped] == [sorted(variants)]
    assert len(jobs) == 3
    # Each variant's score is its own head's, as scoring it alone gives.
    for variant in variants:
        alone = catalog.evaluations.on_split(alice, variant, "shapes", "test")
        assert alone.accuracy == scored[variant].accuracy


def test_a_job_left_queued_by_an_exited_process_is_asked_again(catalog, alice, shapes) -> None:
    # What a `headstart leaderboard` killed mid-wait leaves: a queued job that no runner has.
    mine = tiny_model(catalog, alice, name="mine", labels=["circle", "square", "triangle"])
    asked = {"models": [[mine.id, 1]], "dataset_id": shapes.id, "split": "test"}
    with transaction(catalog.engine) as session:
        stale = catalog.jobs.create(session, alice.id, "evaluate", request=asked).id
    board = run_bounded(lambda: catalog.evaluations.leaderboard(alice, "shapes"))
    assert [(row.model_id, row.pending) for row in board] == [(mine.id, False)]
    assert catalog.jobs.get(alice, stale).state == "queued"  # not this process's to end
