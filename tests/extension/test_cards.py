"""Model cards: a read-only notebook for every public model, kept up to date, none for private ones.

Every test runs on SQLite and on PostgreSQL (`catalog` from tests/conftest.py).
"""

from __future__ import annotations

import json

import pytest

from headstart.extension.cards import card_key
from headstart.kernels.errors import NotFound
from headstart.kernels.schemas import TrainingConfig
from tests.conftest import tiny_model


def card_text(catalog, model_id: int) -> str:
    return catalog.store.path(card_key(model_id)).read_text()


def test_only_public_models_have_cards(catalog, alice) -> None:
    import nbformat

    model = tiny_model(catalog, alice, name="<script>alert(1)</script>", description="a | b")
    assert not catalog.store.exists(card_key(model.id))
    with pytest.raises(NotFound):
        catalog.cards.read(model.id)
    catalog.models.update(alice, model.id, public=True)
    notebook = catalog.cards.read(model.id)
    nbformat.validate(nbformat.from_dict(notebook))
    text = json.dumps(notebook)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert f"client.models.download({model.id}" in text
    assert "small_cnn" in text and "alice" in text
    catalog.models.update(alice, model.id, public=False)
    assert not catalog.store.exists(card_key(model.id))
    with pytest.raises(NotFound):
        catalog.cards.read(model.id)


def test_cards_follow_renames_trainings_and_scores(catalog, alice, shapes) -> None:
    model = tiny_model(catalog, alice, public=True)
    assert "renamed" not in card_text(catalog, model.id)
    catalog.models.update(alice, model.id, name="renamed")
    assert "renamed" in card_text(catalog, model.id)

    training = catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=2))
    catalog.trainings.decide(alice, training.id, "update")
    notebook = json.loads(card_text(catalog, model.id))
    plots = [c for c in notebook["cells"] if "headstart:history-plot" in c["metadata"].get("tags", [])]
    assert len(plots) == 1 and plots[0]["outputs"][0]["data"]["image/png"]
    assert f"Training {training.id}" in plots[0]["source"]

    evaluation = catalog.evaluations.on_split(alice, model.id, "shapes", "test")
    leaderboard = next(c for c in notebook["cells"] if "headstart:leaderboards" in c["metadata"]["tags"])
    assert "shapes" not in leaderboard["source"]
    refreshed = json.loads(card_text(catalog, model.id))
    leaderboard = next(c for c in refreshed["cells"] if "headstart:leaderboards" in c["metadata"]["tags"])
    assert "shapes" in leaderboard["source"] and f"{evaluation.accuracy:.4f}" in leaderboard["source"]

    page = catalog.cards.html(model.id)
    assert "<html" in page and "renamed" in page
    catalog.models.delete(alice, model.id)
    assert not catalog.store.exists(card_key(model.id))


def test_a_childs_card_names_its_public_parent(catalog, alice, bob, shapes) -> None:
    parent = tiny_model(catalog, alice, name="parent", public=True)
    training = catalog.trainings.start(bob, parent.id, "shapes", TrainingConfig(epochs=1))
    child = catalog.trainings.decide(bob, training.id, "keep_both", name="child")
    catalog.models.update(bob, child.id, public=True)
    assert f"(model {parent.id}, version 1)" in card_text(catalog, child.id)
