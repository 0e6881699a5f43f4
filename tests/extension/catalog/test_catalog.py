"""The catalog on SQLite and PostgreSQL: schema, datasets, models and the access rules (rule 5)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from headstart.kernels.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from tests.conftest import staged_leftovers, tiny_model


def test_migrations_create_every_table_at_head(catalog) -> None:
    tables = set(inspect(catalog.engine).get_table_names())
    assert {
        "users",
        "models",
        "model_versions",
        "datasets",
        "trainings",
        "epochs",
        "evaluations",
        "revisions",
    } <= tables
    from alembic.script import ScriptDirectory

    from headstart.extension.catalog.database import alembic_config

    head = ScriptDirectory.from_config(alembic_config(str(catalog.engine.url))).get_current_head()
    with catalog.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    assert {c["name"] for c in inspect(catalog.engine).get_columns("models")} >= {"seed", "label_set"}


def test_the_migrations_build_exactly_the_tables(catalog) -> None:
    """A table changed in tables.py without a migration (or the other way round) shows here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import headstart.extension.catalog.tables  # noqa: F401  (registers every table)

    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_users_are_created_once(catalog) -> None:
    first = catalog.user("alice")
    again = catalog.user(" alice ")
    assert first.id == again.id
    assert catalog.user("bob").id != first.id
    with pytest.raises(Invalid):
        catalog.user("a/b")


def test_dataset_add_list_show(catalog, alice, shapes) -> None:
    assert shapes.labels == ["circle", "square", "triangle"]
    assert sum(shapes.counts.values()) == 42
    assert shapes.created_by == "alice"
    assert catalog.datasets.get("shapes").id == shapes.id
    assert catalog.datasets.get(shapes.id).name == "shapes"
    assert [d.name for d in catalog.datasets.list()] == ["shapes"]
    assert catalog.store.path(f"datasets/{shapes.id}/manifest.json").is_file()


def test_dataset_names_are_unique_and_datasets_permanent(catalog, alice, shapes, shapes_folder) -> None:
    with pytest.raises(Conflict):
        catalog.datasets.add(alice, shapes_folder, name="shapes")
    with pytest.raises(Conflict, match="cannot be deleted"):
        catalog.datasets.delete(alice, "shapes")
    assert catalog.datasets.get("shapes").id == shapes.id
    with pytest.raises(NotFound):
        catalog.datasets.get("nope")


def test_failed_ingest_stores_nothing(catalog, alice, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        for n in range(3):  # three files a label, enough for a test split had they been images
            archive.writestr(f"cat/{n}.png", b"")
            archive.writestr(f"dog/{n}.jpg", b"not an image at all")
    with pytest.raises(Invalid, match="6 of 6 files are not usable images") as raised:
        catalog.datasets.add(alice, bad, name="broken")
    assert len(raised.value.detail) == 6
    assert catalog.datasets.list() == []
    assert list(catalog.store.path("datasets").iterdir()) == []
    assert staged_leftovers(catalog.store) == []


def test_a_dataset_without_a_test_split_stores_nothing(catalog, alice, shapes_folder, tmp_path: Path) -> None:
    # Three files a label pass the first look, but two are copies: two different images give no test.
    upload = tmp_path / "copies"
    for label in ("circle", "square"):
        first, second = sorted((shapes_folder / label).glob("*.png"))[:2]
        (upload / label).mkdir(parents=True)
        for name, source in (("a.png", first), ("b.png", second), ("c.png", first)):
            (upload / label / name).write_bytes(source.read_bytes())
    with pytest.raises(Invalid, match=r"test split would be empty.*\(circle: 2, square: 2\)$"):
        catalog.datasets.add(alice, upload, name="copies")
    assert catalog.datasets.list() == []
    assert list(catalog.store.path("datasets").iterdir()) == []
    assert staged_leftovers(catalog.store) == []


def test_model_records_its_facts(catalog, alice) -> None:
    model = tiny_model(catalog, alice, labels=["a", "b"])
    assert model.kind == "classifier" and model.labels == ["a", "b"]
    assert model.owner == "alice" and model.public is False and model.version == 1
    assert model.params > 0 and model.size_bytes > 0
    assert model.input_contract["shape"] == [224, 224, 3]
    feature = tiny_model(catalog, alice, name="fv")
    assert feature.kind == "feature_vector" and feature.labels is None
    assert feature.parent_id is None


def test_private_models_do_not_exist_for_others(catalog, alice, bob, shapes, tmp_path: Path) -> None:
    private = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    assert [m.id for m in catalog.models.list(alice)] == [private.id]
    assert catalog.models.list(bob) == []
    for attempt in (
        lambda: catalog.models.get(bob, private.id),
        lambda: catalog.models.versions(bob, private.id),
        lambda: catalog.models.download(bob, private.id, tmp_path),
        lambda: catalog.evaluations.on_split(bob, private.id, "shapes"),
        lambda: catalog.trainings.start(bob, private.id, "shapes"),
        lambda: catalog.models.update(bob, private.id, name="mine now"),
        lambda: catalog.models.delete(bob, private.id),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert catalog.evaluations.leaderboard(bob, "shapes") == []
    assert [row.model_id for row in catalog.evaluations.leaderboard(alice, "shapes")] == [private.id]


def test_public_models_are_shared_but_owned(catalog, alice, bob, tmp_path: Path) -> None:
    model = tiny_model(catalog, alice)
    catalog.models.update(alice, model.id, public=True)
    assert [m.id for m in catalog.models.list(bob)] == [model.id]
    assert catalog.models.get(bob, model.id).public
    assert catalog.models.download(bob, model.id, tmp_path).is_file()
    with pytest.raises(Forbidden):
        catalog.models.update(bob, model.id, name="taken")
    with pytest.raises(Forbidden):
        catalog.models.delete(bob, model.id)
    catalog.models.update(alice, model.id, public=False)
    with pytest.raises(NotFound):
        catalog.models.get(bob, model.id)


def test_model_list_filters(catalog, alice, bob) -> None:
    a = tiny_model(catalog, alice, labels=["x", "y"], public=True)
    b = tiny_model(catalog, bob, name="fv", public=True)
    c = tiny_model(catalog, bob, name="private")
    ids = lambda rows: [m.id for m in rows]  # noqa: E731
    assert ids(catalog.models.list(bob)) == [a.id, b.id, c.id]
    assert ids(catalog.models.list(bob, mine=True)) == [b.id, c.id]
    assert ids(catalog.models.list(bob, owner="alice")) == [a.id]
    assert ids(catalog.models.list(bob, kind="feature_vector")) == [b.id, c.id]
    assert ids(catalog.models.list(bob, labels=["y", "x"])) == [a.id]
    assert ids(catalog.models.list(bob, public=False)) == [c.id]


def test_rename_and_describe(catalog, alice) -> None:
    model = tiny_model(catalog, alice)
    changed = catalog.models.update(alice, model.id, name="renamed", description="for tests")
    assert (changed.name, changed.description) == ("renamed", "for tests")
    with pytest.raises(Invalid):
        catalog.models.update(alice, model.id, name="  ")
    assert catalog.models.get(alice, model.id).name == "renamed"


def test_model_limits_refuse_creation_and_store_nothing(tmp_path: Path, db_url: str) -> None:
    from headstart.extension.manager import Catalog

    small = Catalog(home=str(tmp_path / "limited"), db_url=db_url, max_model_params=100)
    owner = small.user("alice")
    with pytest.raises(TooLarge, match="100"):
        tiny_model(small, owner)
    assert small.models.list(owner) == []
    assert list(small.store.path("models").iterdir()) == []
    small.close()


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def test_upload_checks_labels_and_wraps_functional_models(catalog, alice, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(2, 3, strides=8)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    path = _save(keras.Model(inputs, outputs), tmp_path / "functional.keras")
    with pytest.raises(Invalid, match="labels"):
        catalog.models.upload(alice, path, name="no labels")
    with pytest.raises(Invalid, match="2 outputs"):
        catalog.models.upload(alice, path, name="wrong", labels=["a", "b", "c"])
    model = catalog.models.upload(alice, path, name="ok", labels=["a", "b"])
    assert model.kind == "classifier" and model.labels == ["a", "b"]
    stored = keras.saving.load_model(catalog.store.path(f"models/{model.id}/v1/model.keras"))
    assert isinstance(stored, keras.Sequential)
    assert [m.name for m in catalog.models.list(alice)] == ["ok"]


def test_upload_over_the_size_limit_is_refused(tmp_path: Path, db_url: str) -> None:
    import keras

    from headstart.extension.manager import Catalog

    model = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D()])
    path = _save(model, tmp_path / "small.keras")
    size = path.stat().st_size
    limited = Catalog(home=str(tmp_path / "limited"), db_url=db_url, max_model_bytes=size - 1)
    owner = limited.user("alice")
    with pytest.raises(TooLarge) as raised:
        limited.models.upload(owner, path, name="big")
    assert f"{size:,} bytes" in str(raised.value) and f"limit of {size - 1:,}" in str(raised.value)
    assert limited.models.list(owner) == []
    limited.close()


def test_upload_refuses_other_files(catalog, alice, tmp_path: Path) -> None:
    text = tmp_path / "model.keras"
    text.write_text("not a zip")
    with pytest.raises(Invalid):
        catalog.models.upload(alice, text, name="x")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF")
    with pytest.raises(Invalid, match=r"\.keras"):
        catalog.models.upload(alice, h5, name="x")


def test_deleting_a_model_deletes_its_trainings_and_evaluations(catalog, alice, shapes) -> None:
    from sqlmodel import select

    from headstart.extension.catalog.database import transaction
    from headstart.extension.catalog.tables import Epoch, Evaluation, ModelVersion, Training
    from headstart.kernels.schemas import TrainingConfig

    model = tiny_model(catalog, alice)
    training = catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=1))
    catalog.trainings.decide(alice, training.id, "update")
    catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=1))  # a pending candidate
    catalog.evaluations.on_split(alice, model.id, "shapes")
    catalog.models.delete(alice, model.id)
    with transaction(catalog.engine) as session:
        for table in (Training, Epoch, Evaluation, ModelVersion):
            assert session.exec(select(table)).all() == []
    assert not catalog.store.path(f"models/{model.id}").exists()
    with pytest.raises(NotFound):
        catalog.models.get(alice, model.id)


def test_model_pages_count_every_match(catalog, alice, bob) -> None:
    made = [tiny_model(catalog, alice, name=f"m{i}", public=i % 2 == 0) for i in range(5)]
    first, total = catalog.models.page(bob, limit=2)
    assert total == 3 and [m.name for m in first] == ["m0", "m2"]
    rest, _ = catalog.models.page(bob, limit=2, offset=2)
    assert [m.name for m in rest] == ["m4"]
    mine, total = catalog.models.page(alice, mine=True, limit=10)
    assert total == 5 and [m.id for m in mine] == [m.id for m in made]
    assert all(m.owner == "alice" and m.params > 0 for m in mine)
    with pytest.raises(Invalid):
        catalog.models.page(alice, limit=0)


def test_the_label_set_migration_fills_existing_models(tmp_path: Path, db_url: str) -> None:
    from alembic import command

    from headstart.extension.catalog.database import alembic_config, connect

    engine = connect(db_url, migrate=False)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text("INSERT INTO users (id, name, created_at) VALUES (1, 'alice', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO models (id, name, description, kind, labels, public, version, owner_id, "
                "created_at, updated_at) VALUES (1, 'm', '', 'classifier', :labels, false, 1, 1, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"labels": '["dog", "cat"]'},
        )
        command.upgrade(config, "head")
        assert conn.execute(text("SELECT label_set FROM models")).scalar() == "cat\x1fdog"
    engine.dispose()


def test_the_seed_migration_leaves_older_models_unseeded(tmp_path: Path, db_url: str) -> None:
    from alembic import command

    from headstart.extension.catalog.database import alembic_config, connect

    engine = connect(db_url, migrate=False)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(text("INSERT INTO users (id, name, created_at) VALUES (1, 'alice', CURRENT_TIMESTAMP)"))
        conn.execute(
            text(
                "INSERT INTO models (id, name, description, kind, public, version, owner_id, "
                "created_at, updated_at) VALUES (1, 'm', '', 'feature_vector', false, 1, 1, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        command.upgrade(config, "0005")
        assert conn.execute(text("SELECT seed FROM models")).all() == [(None,)]
        command.downgrade(config, "0004")
        assert "seed" not in {c["name"] for c in inspect(conn).get_columns("models")}
    engine.dispose()


def test_a_created_model_keeps_its_seed_and_an_upload_has_none(catalog, alice, tmp_path: Path) -> None:
    seeded = tiny_model(catalog, alice, name="seeded", seed=7)
    default = tiny_model(catalog, alice, name="default")
    assert (seeded.seed, default.seed) == (7, 0)
    assert catalog.models.get(alice, seeded.id).seed == 7
    assert {m.name: m.seed for m in catalog.models.list(alice)} == {"seeded": 7, "default": 0}
    path = catalog.models.download(alice, seeded.id, tmp_path / "seeded.keras")
    assert catalog.models.upload(alice, path, name="uploaded").seed is None
    with pytest.raises(Invalid, match="seed must be a whole number"):
        tiny_model(catalog, alice, name="negative", seed=-1)


def test_a_session_binds_its_user(catalog, alice, shapes) -> None:
    private = tiny_model(catalog, alice)
    assert catalog.session("bob").models.list() == []
    mine = catalog.session("alice")
    assert mine.me() == "alice"
    assert [m.id for m in mine.models.list()] == [private.id]
    assert mine.datasets.get("shapes").id == shapes.id  # datasets are public: no user to bind
    with pytest.raises(NotFound):
        catalog.session("bob").models.get(private.id)


def test_a_new_user_added_by_two_catalogs_at_once_is_one_row(catalog, db_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from headstart.extension.manager import Catalog

    others = [Catalog(home=str(tmp_path / f"c{i}"), db_url=db_url) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(lambda c: c.user("carol").id, others))
    assert len(ids) == 1 and catalog.user("carol").id in ids
    for other in others:
        other.close()
