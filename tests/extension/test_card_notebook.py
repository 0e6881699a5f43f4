"""A model card run as its reader runs it: the card the service generates, executed with nbclient.

The kernel is the environment's own `python3` (the one `pip install -e .[test]` sets up), with
HEADSTART_URL and JUPYTERHUB_API_TOKEN pointing at a real catalog service
(headstart.extension.standalone), as a hub's spawner sets them. What its cells print is checked
against the catalog's own records of the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headstart.extension.standalone import serve_catalog
from headstart.kernels.client import HeadstartClient
from headstart.kernels.schemas import TrainingConfig

pytestmark = pytest.mark.slow

SHAPES = ["circle", "square", "triangle"]


@dataclass
class Cards:
    url: str
    token: str
    home: Path
    classifier: Any  # ModelPublic of the re-trained, scored, public classifier
    vector: Any  # ModelPublic of a public feature vector, never scored
    training_id: int
    score: Any  # EvaluationPublic of the classifier on the shapes test split


@pytest.fixture(scope="module")
def cards(
    tmp_path_factory: pytest.TempPathFactory, shapes_folder: Path, dask_scheduler: str
) -> Iterator[Cards]:
    from headstart.extension.manager import Catalog
    from tests.conftest import tiny_model

    home = tmp_path_factory.mktemp("card-catalog")
    catalog = Catalog(home=str(home))
    alice = catalog.user("alice")
    catalog.datasets.add(alice, shapes_folder, name="shapes")
    base = tiny_model(catalog, alice, name="card base", labels=SHAPES, public=True)
    training = catalog.trainings.start(alice, base.id, "shapes", TrainingConfig(epochs=2))
    child = catalog.trainings.decide(alice, training.id, "keep_both", name="card model")
    classifier = catalog.models.update(alice, child.id, public=True)
    score = catalog.evaluations.on_split(alice, classifier.id, "shapes", "test")
    vector = tiny_model(catalog, alice, name="card vector", public=True)
    catalog.close()
    config = {"JobRunner": {"cluster": "address", "address": dask_scheduler}}
    with serve_catalog(home, "alice", config) as running:
        yield Cards(running.url, running.token, home, classifier, vector, training.id, score)


def run_card(cards: Cards, model_id: int, folder: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The model's card fetched from the service and executed in a fresh python3 kernel in `folder`."""
    import nbformat
    from nbclient import NotebookClient

    with HeadstartClient(cards.url, cards.token) as client:
        path = client.models.notebook(model_id, folder)
    notebook = nbformat.read(path, as_version=4)
    # The kernel inherits this process's environment, as a user's kernel inherits the spawner's.
    monkeypatch.setenv("HEADSTART_URL", cards.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", cards.token)
    NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(folder)}}
    ).execute()
    return notebook.cells


def text_of(cell: dict) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "text/plain" in output.get("data", {}):
            parts.append(output["data"]["text/plain"])
    return "".join(parts)


def tagged(cells: list[dict], tag: str) -> list[dict]:
    return [cell for cell in cells if tag in cell.metadata.get("tags", [])]


def test_a_classifiers_card_runs_and_says_what_the_catalog_holds(
    cards: Cards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras
    import numpy as np

    model, score = cards.classifier, cards.score
    cells = run_card(cards, model.id, tmp_path, monkeypatch)
    code = [cell for cell in cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code)
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]

    [facts] = tagged(cells, "headstart:facts-code")
    assert text_of(facts).splitlines() == [
        f"card model: model {model.id}, version 1, a classifier by alice",
        "labels: circle, square, triangle",
    ]
    [scores] = tagged(cells, "headstart:scores")
    assert text_of(scores).splitlines() == [
        f"shapes: accuracy {score.accuracy:.4f}, loss {score.loss:.4f}, {score.count} test images"
    ]
    # The history cell draws its training's curves again when it runs.
    [history] = tagged(cells, "headstart:history-plot")
    assert f"Training {cards.training_id} on 'shapes'" in history.source
    assert [o.output_type for o in history.outputs] == ["display_data"]
    assert history.outputs[0].data["image/png"]

    [load] = tagged(cells, "headstart:load")
    downloaded = tmp_path / f"model-{model.id}.keras"
    assert downloaded.is_file()
    assert f"{model.params:,}" in text_of(load)
    # What the card printed for a grey square is what the downloaded model predicts for it.
    outputs = keras.saving.load_model(downloaded).predict(np.full((1, 224, 224, 3), 128.0), verbose=0)[0]
    expected = [f"{SHAPES[i]}: {outputs[i]:.3f}" for i in np.argsort(outputs)[::-1][:3]]
    [predict] = tagged(cells, "headstart:predict")
    assert text_of(predict).splitlines() == expected


def test_a_feature_vectors_card_runs_without_labels_or_scores(
    cards: Cards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    vector = cards.vector
    cells = run_card(cards, vector.id, tmp_path, monkeypatch)
    assert not [
        o for cell in cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"
    ]
    [facts] = tagged(cells, "headstart:facts-code")
    assert text_of(facts).splitlines() == [
        f"card vector: model {vector.id}, version 1, a feature_vector by alice",
        "labels: none (a feature vector)",
    ]
    [scores] = tagged(cells, "headstart:scores")
    assert text_of(scores).startswith("no scores of this version yet")
    assert tagged(cells, "headstart:history-plot") == []
    width = keras.saving.load_model(tmp_path / f"model-{vector.id}.keras").output_shape[-1]
    [predict] = tagged(cells, "headstart:predict")
    assert text_of(predict).splitlines() == [f"a feature vector of {width} values"]
