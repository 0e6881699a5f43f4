"""The transfer benchmark: bodies by datasets, one standard linear probe per cell, computed once.

Every test runs on SQLite and on PostgreSQL (`catalog` from tests/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from headstart.kernels.engine.features import FeatureCache
from headstart.kernels.engine.probe import fit_probe
from headstart.kernels.engine.shards import DatasetReader
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import TrainingConfig
from headstart.kernels.store import dataset_key
from tests.conftest import run_bounded, tiny_model


def jobs_of(catalog, user, kind: str = "probe") -> list:
    return [job for job in catalog.jobs.list(user) if job.kind == kind]


def test_cells_are_pending_then_scored_and_computed_once(catalog, alice, shapes) -> None:
    vector = tiny_model(catalog, alice, name="vector")
    first = catalog.benchmark.table(alice)
    assert first.datasets == ["shapes"] and first.pending == 1
    (row,) = first.rows
    assert row.name == "vector" and [m.id for m in row.models] == [vector.id]
    (cell,) = row.cells
    assert cell.state == "pending" and cell.job_id is not None and cell.accuracy is None
    # Asking again while it runs queues nothing more.
    again = catalog.benchmark.table(alice)
    assert again.rows[0].cells[0].job_id == cell.job_id and len(jobs_of(catalog, alice)) == 1

    done = catalog.benchmark.matrix(alice)
    assert done.pending == 0
    (scored,) = done.rows[0].cells
    assert scored.state == "scored" and scored.count == shapes.counts["test"]
    assert 0.0 <= scored.accuracy <= 1.0 and scored.rank == 1.0 and done.rows[0].mean_rank == 1.0
    # Kept for good: the next table asks for no job.
    catalog.benchmark.matrix(alice)
    assert len(jobs_of(catalog, alice)) == 1


def test_a_cell_is_the_probe_on_the_cached_features(catalog, alice, shapes) -> None:
    tiny_model(catalog, alice, name="vector", seed=3)
    (row,) = catalog.benchmark.matrix(alice).rows
    cell = catalog.benchmark.cell(alice, row.body[:8], "shapes")
    assert cell.body == row.body and cell.labels == shapes.labels
    # The same probe, fitted here on the features the job cached, scores the same.
    cache = FeatureCache(catalog.store.path("features"), catalog.store.path("tmp"))
    reader = DatasetReader(catalog.store.path(dataset_key(shapes.id)))
    train, test = reader.split("train"), reader.split("test")
    fitted = fit_probe(cache.load(row.body, shapes.id, "train"), np.asarray(train.labels))
    predicted = fitted.probabilities(cache.load(row.body, shapes.id, "test"), len(shapes.labels)).argmax(1)
    assert cell.cell.accuracy == pytest.approx(float(np.mean(predicted == np.asarray(test.labels))))
    # Per-class figures agree with the confusion matrix they come from.
    confusion = np.asarray(cell.confusion)
    assert confusion.shape == (3, 3) and confusion.sum() == cell.cell.count
    assert [c["support"] for c in cell.per_class] == confusion.sum(axis=1).tolist()
    assert cell.probe.startswith("multinomial logistic regression")


def test_variants_of_one_body_are_one_row_and_rows_rank_per_dataset(
    catalog, alice, shapes, digits_folder
) -> None:
    catalog.datasets.add(alice, digits_folder, name="digits")
    labels = ["circle", "square", "triangle"]
    classifier = tiny_model(catalog, alice, name="classifier", labels=labels, seed=1)
    training = catalog.trainings.start(alice, classifier.id, "shapes", TrainingConfig(epochs=1))
    variant = catalog.trainings.decide(alice, training.id, "keep_both", name="variant")
    other = tiny_model(catalog, alice, name="other", seed=2)
    table = catalog.benchmark.matrix(alice)
    assert table.datasets == ["shapes", "digits"] and table.pending == 0
    by_name = {row.name: row for row in table.rows}
    # The variant's frozen body is the classifier's: one row carries both.
    assert set(by_name) == {"classifier", "other"}
    assert [m.id for m in by_name["classifier"].models] == [classifier.id, variant.id]
    for column in range(2):
        cells = [row.cells[column] for row in table.rows]
        ordered = sorted(cells, key=lambda c: -c.accuracy)
        ranks = [c.rank for c in ordered]
        assert sorted(ranks) == ([1.5, 1.5] if ordered[0].accuracy == ordered[1].accuracy else [1.0, 2.0])
    means = [row.mean_rank for row in table.rows]
    assert means == sorted(means)
    assert [row.name for row in catalog.benchmark.table(alice, ["digits"]).rows] != []
    assert catalog.benchmark.table(alice, ["digits"]).datasets == ["digits"]
    assert other.id in {m.id for row in table.rows for m in row.models}


def test_a_private_body_is_a_row_for_its_owner_alone(catalog, alice, bob, shapes) -> None:
    private = tiny_model(catalog, alice, name="private", seed=4)
    tiny_model(catalog, bob, name="bobs", seed=5, public=True)
    mine = catalog.benchmark.matrix(alice)
    theirs = catalog.benchmark.matrix(bob)
    assert {row.name for row in mine.rows} == {"private", "bobs"}
    assert {row.name for row in theirs.rows} == {"bobs"}
    hidden = next(row.body for row in mine.rows if row.name == "private")
    with pytest.raises(NotFound):
        catalog.benchmark.cell(bob, hidden, "shapes")
    assert catalog.benchmark.cell(alice, hidden, "shapes").cell.state == "scored"
    catalog.models.update(alice, private.id, public=True)
    assert {row.name for row in catalog.benchmark.table(bob).rows} == {"private", "bobs"}


def test_bad_names_are_refused(catalog, alice, shapes) -> None:
    tiny_model(catalog, alice, name="vector")
    (row,) = catalog.benchmark.table(alice).rows
    with pytest.raises(NotFound, match="dataset nope not found"):
        catalog.benchmark.table(alice, ["nope"])
    with pytest.raises(Invalid, match="at least 6"):
        catalog.benchmark.cell(alice, row.body[:3], "shapes")
    with pytest.raises(Invalid, match="at least 6"):
        catalog.benchmark.cell(alice, "zzzzzzzz", "shapes")
    with pytest.raises(NotFound, match="body"):
        catalog.benchmark.cell(alice, "0" * 64 if not row.body.startswith("0") else "f" * 64, "shapes")


def test_a_probe_left_queued_by_an_exited_process_is_asked_again(catalog, alice, shapes) -> None:
    from headstart.extension.catalog.database import transaction

    tiny_model(catalog, alice, name="vector")
    (row,) = catalog.benchmark.matrix(alice).rows
    other = tiny_model(catalog, alice, name="other", seed=9)
    asked = {"body_sha": catalog.models.ref(alice, other.id).body_sha, "dataset_id": shapes.id}
    with transaction(catalog.engine) as session:
        catalog.jobs.create(session, alice.id, "probe", request=asked)  # no runner has it
    table = run_bounded(lambda: catalog.benchmark.matrix(alice))
    assert table.pending == 0 and {r.body for r in table.rows} == {row.body, asked["body_sha"]}
