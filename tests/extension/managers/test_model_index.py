"""The catalog's revision and the models' snapshot that lists and shows are served from."""

from __future__ import annotations

import gc
import itertools
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import RevisionClock, transaction
from headstart.extension.catalog.tables import CatalogModel, Epoch, Evaluation, Training, User, label_key
from headstart.extension.managers import heap
from headstart.extension.managers.models import model_filter
from headstart.kernels.errors import NotFound
from tests.conftest import tiny_model


def revision(catalog) -> int:
    return RevisionClock(catalog.engine).read().models


def test_changes_to_models_count_and_epochs_do_not(catalog, alice, shapes) -> None:
    start = revision(catalog)
    model = tiny_model(catalog, alice, labels=["a", "b"])
    created = revision(catalog)
    assert created > start
    catalog.models.update(alice, model.id, public=True)
    assert revision(catalog) == created + 1
    with transaction(catalog.engine) as session:
        training = Training(
            model_id=model.id, model_version=1, owner_id=alice.id, dataset_id=shapes.id, config={}
        )
        session.add(training)
        session.flush()
        session.add(Epoch(training_id=training.id, epoch=1, loss=1.0, accuracy=0.5))
    assert revision(catalog) == created + 1  # trainings and epochs are read fresh, not kept
    with pytest.raises(RuntimeError), transaction(catalog.engine) as session:
        session.add(User(name="carol"))
        session.flush()
        raise RuntimeError("rolled back")
    assert revision(catalog) == created + 1
    catalog.models.delete(alice, model.id)
    assert revision(catalog) == created + 2


def test_each_family_counts_its_own_changes(catalog, alice, shapes, shapes_folder) -> None:
    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    before = RevisionClock(catalog.engine).read()
    catalog.datasets.add(alice, shapes_folder, name="again")
    ingested = RevisionClock(catalog.engine).read()
    assert ingested == before._replace(datasets=before.datasets + 1)
    catalog.evaluations.on_split(alice, model.id, "again", "val")
    scored = RevisionClock(catalog.engine).read()
    assert scored == ingested._replace(evaluations=ingested.evaluations + 1)
    # One transaction that changes two families counts once in each.
    with transaction(catalog.engine) as session:
        session.add(User(name="carol"))
        session.flush()
        session.delete(session.exec(select(Evaluation)).one())
        session.add(User(name="dave"))
    both = RevisionClock(catalog.engine).read()
    assert both == scored._replace(models=scored.models + 1, evaluations=scored.evaluations + 1)


def test_a_family_s_commits_leave_the_other_families_peeks_alone(catalog, alice) -> None:
    model = tiny_model(catalog, alice, name="kept")
    index, clock = catalog.models.index, catalog.revisions
    clock.poll_seconds = 3600.0
    snapshot = index.current()
    assert index.peek() is snapshot and clock.peek() is not None
    # A score lands (an evaluation row): the models' snapshot is still trusted, a leaderboard's not.
    with transaction(catalog.engine) as session:
        session.add(Evaluation(model_id=model.id, model_version=1, result={}, requested_by_id=alice.id))
    assert index.peek() is snapshot
    assert clock.peek() is None and clock.peek(("evaluations",)) is None
    # A model changes: now the models' peek asks the database too.
    catalog.models.update(alice, model.id, public=True)
    assert index.peek() is None
    assert index.current().by_id[model.id].public is True


def test_readers_that_arrive_together_share_a_query(catalog) -> None:
    clock = RevisionClock(catalog.engine)
    queries, first_held, release = [], threading.Event(), threading.Event()

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM revisions" in statement:
            queries.append(statement)
            if len(queries) == 1:
                first_held.set()
                release.wait(30)

    event.listen(catalog.engine, "before_cursor_execute", count)
    try:
        answers = []
        first = threading.Thread(target=lambda: answers.append(clock.read()))
        first.start()
        assert first_held.wait(30)
        # Five readers ask while the first query runs: it began before they asked, so it may have
        # missed their commits, and they take the next read, all of them the same one.
        late = [threading.Thread(target=lambda: answers.append(clock.read())) for _ in range(5)]
        for thread in late:
            thread.start()
        time.sleep(0.5)
        release.set()
        for thread in [first, *late]:
            thread.join(30)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", count)
    assert len(queries) == 2 and len(answers) == 6
    assert len(set(answers)) == 1


def test_the_snapshot_filters_as_the_access_rules_do_in_sql(catalog, alice, bob) -> None:
    """Every filter of a list, for owner and stranger, against the SQL of catalog.access."""
    tiny_model(catalog, alice, name="a-private", labels=["cat", "dog"])
    tiny_model(catalog, alice, name="a-public", labels=["dog", "cat"], public=True)
    tiny_model(catalog, alice, name="a-vector", public=True)
    tiny_model(catalog, bob, name="b-private", labels=["cat", "dog"])
    tiny_model(catalog, bob, name="b-public", labels=["x", "y", "z"], public=True)
    snapshot = catalog.models.index.current()
    owners, kinds = [None, "alice", "bob", "nobody"], [None, "classifier", "feature_vector"]
    label_sets = [None, ["cat", "dog"], ["x", "y", "z"], []]
    checked = 0
    for viewer, owner, kind, labels, mine, public in itertools.product(
        (alice, bob), owners, kinds, label_sets, (False, True), (None, True, False)
    ):
        wanted = model_filter(owner=owner, kind=kind, labels=labels, mine=mine, public=public)
        served = [entry.id for entry in snapshot.matching(viewer.id, wanted)]
        query = select(CatalogModel.id).join(User, col(User.id) == CatalogModel.owner_id)
        query = query.where(access.visible_to(viewer))
        if mine:
            query = query.where(CatalogModel.owner_id == viewer.id)
        if owner is not None:
            query = query.where(User.name == owner)
        if kind is not None:
            query = query.where(CatalogModel.kind == kind)
        if public is not None:
            query = query.where(col(CatalogModel.public).is_(public))
        if labels is not None:
            query = query.where(CatalogModel.label_set == label_key(labels))
        with transaction(catalog.engine) as session:
            expected = list(session.exec(query.order_by(CatalogModel.id)).all())
        assert served == expected, (viewer.name, wanted)
        checked += bool(expected)
    assert checked > 100  # most combinations select something, so the comparison has teeth


def test_pages_and_shows_follow_changes_at_once(catalog, alice, bob) -> None:
    first = tiny_model(catalog, alice, name="first")
    second = tiny_model(catalog, alice, name="second", public=True)
    items, total = catalog.models.page(bob, limit=10)
    assert [m.name for m in items] == ["second"] and total == 1
    catalog.models.update(alice, first.id, public=True)
    assert catalog.models.index.peek() is None  # this process committed: the snapshot is not trusted
    items, total = catalog.models.page(bob, limit=1, offset=1)
    assert [m.name for m in items] == ["second"] and total == 2
    catalog.models.update(alice, second.id, name="renamed")
    assert catalog.models.get(bob, second.id).name == "renamed"
    catalog.models.delete(alice, second.id)
    with pytest.raises(NotFound):
        catalog.models.get(bob, second.id)
    assert [m.id for m in catalog.models.list(bob)] == [first.id]


def test_the_page_json_is_the_api_page(catalog, alice) -> None:
    models = [tiny_model(catalog, alice, name=f"m{n}") for n in range(3)]
    snapshot = catalog.models.index.current()
    body = snapshot.page_json(alice.id, model_filter(), 2, 1)
    import json

    page = json.loads(body)
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [item["id"] for item in page["items"]] == [m.id for m in models[1:]]
    assert page["items"][0] == json.loads(models[1].model_dump_json())


# Another process sharing the catalog's database: it opens the catalog, says "ready", and publishes
# the model when told to, saying "committed" once its transaction is in.
PUBLISHER = """
import sys
from headstart.extension.manager import Catalog
catalog = Catalog(home=sys.argv[1], db_url=sys.argv[2])
alice = catalog.user("alice")
print("ready", flush=True)
sys.stdin.readline()
catalog.models.update(alice, int(sys.argv[3]), public=True)
print("committed", flush=True)
"""


def test_another_process_change_is_seen_within_the_poll_and_not_before(catalog, alice, bob) -> None:
    model = tiny_model(catalog, alice, name="theirs")
    index, clock = catalog.models.index, catalog.revisions
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(catalog.home), catalog.db_url, str(model.id)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, publisher.kill)  # a stuck publisher fails the test, not the run
    watchdog.start()
    try:
        # Its start-up (seconds of imports) is over before any of the timing below begins.
        assert publisher.stdout.readline() == "ready\n"
        # Before it commits, a read that asks the database still finds the model private.
        clock.poll_seconds = 0.0
        assert index.peek() is None
        assert index.current().by_id[model.id].public is False
        # A window longer than the commit takes: the snapshot is trusted without asking.
        clock.poll_seconds = 3600.0
        snapshot = index.current()
        assert index.peek() is snapshot
        publisher.stdin.write("publish\n")
        publisher.stdin.flush()
        assert publisher.stdout.readline() == "committed\n"
        # The other process's commit leaves this one's counter alone: within the window the peek
        # still trusts the old snapshot, and so do lists and shows served from it.
        assert index.peek() is snapshot and snapshot.by_id[model.id].public is False
        # Once the window has passed since the last read, the peek asks, and the change is seen.
        clock.poll_seconds = 0.2
        deadline = time.monotonic() + 0.2 + 10
        while index.peek() is not None:
            assert time.monotonic() < deadline, "the snapshot outlived its poll window"
            time.sleep(0.01)
        assert index.current().by_id[model.id].public is True
        assert catalog.models.get(bob, model.id).public is True
        assert publisher.wait(60) == 0
    finally:
        watchdog.cancel()
        publisher.kill()
        publisher.wait()


def test_kept_caches_are_out_of_the_collectors_way(catalog, alice, shapes, monkeypatch) -> None:
    """In a service, a models' snapshot and a ranking, once built, are frozen (extension.managers.heap):
    a full collection no longer walks their rows, which under load stopped every request for 100 ms
    or more. Outside one (a command line's process) nothing is frozen."""
    monkeypatch.setattr(heap, "serving", False)  # a test before may have started the extension
    tiny_model(catalog, alice, name="kept", labels=["circle", "square", "triangle"], public=True)
    unfrozen = catalog.models.index.current()
    assert any(thing is unfrozen.entries for thing in gc.get_objects())
    monkeypatch.setattr(heap, "serving", True)
    tiny_model(catalog, alice, name="moved", labels=["circle", "square", "triangle"], public=True)
    snapshot = catalog.models.index.current()
    catalog.evaluations.leaderboard(alice, shapes.name)
    ranking = catalog.evaluations._rankings[shapes.name]
    walked = {id(thing) for thing in gc.get_objects()}
    kept = [snapshot, snapshot.entries, snapshot.entries[0].fields, ranking, ranking.standings[0]]
    assert [id(thing) in walked for thing in kept] == [False] * len(kept)
    # What is made later is walked until the next cache is built.
    made = {"after": ["the freeze"]}
    assert any(thing is made for thing in gc.get_objects())
