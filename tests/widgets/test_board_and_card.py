"""The leaderboard, evaluation, model card and studio widgets, driven in plain Python against the
real catalog service of conftest.py (alice signed in), with their state read back from the widgets."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import NotFound
from headstart.kernels.schemas import TrainingConfig
from headstart.widgets import studio
from headstart.widgets.adding import AddDataset, NewModel
from headstart.widgets.benchmark import BenchmarkBoard
from headstart.widgets.card import ModelCard
from headstart.widgets.evaluate import Evaluate
from headstart.widgets.heatmap import CELL_MIN_PX, ConfusionMatrix, normalised
from headstart.widgets.leaderboard import Leaderboard
from headstart.widgets.pickers import ModelPicker
from headstart.widgets.sweep import SweepSetup
from headstart.widgets.tabs import TITLES
from tests.widgets.conftest import Service

LABELS = ["circle", "square", "triangle"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _tiny(
    client: HeadstartClient, name: str, *, public: bool = True, labels: list[str] | None = LABELS
) -> int:
    model = client.models.create(
        name=name,
        architecture="small_cnn",
        weights=None,
        options={"filters": 2},
        labels=labels,
        public=public,
    )
    return model.id


def _walk(widget: w.Widget) -> Iterator[w.Widget]:
    """Every widget inside `widget`, itself included, as a person would find them on screen."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


@dataclass
class Family:
    parent: int
    parent_name: str
    child: int
    child_name: str
    training: int


@pytest.fixture(scope="module")
def family(service: Service) -> Iterator[Family]:
    """A public classifier of alice's and the child that a one-epoch keep_both training made of it."""
    with service.client() as client:
        parent_name, child_name = _unique("card-parent"), _unique("card-child")
        parent = _tiny(client, parent_name)
        training = client.trainings.start(
            parent, "shapes", TrainingConfig(epochs=2, batch_size=8), timeout=180
        )
        child = client.trainings.decide(training.id, "keep_both", name=child_name)
        assert child is not None
        client.models.update(child.id, public=True)
        yield Family(parent, parent_name, child.id, child_name, training.id)


# --- the confusion matrix --------------------------------------------------------------------------


def test_confusion_matrix_of_50_classes_stays_readable() -> None:
    labels = [f"class-{n:02d}-with-a-rather-long-name" for n in range(50)]
    matrix = [[(7 if i == j else (1 if (i + j) % 7 == 0 else 0)) for j in range(51)] for i in range(50)]

    confusion = ConfusionMatrix()
    confusion.show(matrix, labels)

    # Rows are the true labels, columns the predictions and the "(other)" column, in full.
    assert list(confusion.heatmap.row) == labels
    assert list(confusion.heatmap.column) == [*labels, "(other)"]
    assert np.asarray(confusion.heatmap.color).tolist() == matrix
    # Each cell stays big enough to hover and the figure grows instead; the numbers are on hover.
    cell = (
        int(confusion.figure.layout.width[:-2])
        - sum(confusion.figure.fig_margin[k] for k in ("left", "right"))
    ) / 51
    assert cell >= CELL_MIN_PX
    assert confusion.heatmap.display_format is None
    assert confusion.heatmap.tooltip.fields == ["row", "column", "color"]
    assert confusion.heatmap.tooltip.labels == ["true", "predicted", "images"]
    assert confusion.column_axis.tick_rotate != 0  # long names slant rather than overlap
    assert "50 classes" in confusion.title.value

    confusion.mode.value = "share of true label"
    shares = np.asarray(confusion.heatmap.color)
    assert shares.sum(axis=1) == pytest.approx(np.ones(50))
    assert confusion.heatmap.tooltip.labels[-1] == "share" and confusion.color_scale.max == 1.0


def test_confusion_matrix_of_few_classes_shows_its_counts_and_an_empty_one_says_so() -> None:
    confusion = ConfusionMatrix()
    assert confusion.figure.layout.display == "none" and "no confusion matrix" in confusion.title.value
    confusion.show([[5, 1, 0], [0, 4, 2], [0, 0, 6]], LABELS)
    assert confusion.figure.layout.display is None
    assert confusion.heatmap.display_format == ".0f"  # few classes: the counts are in the cells
    assert list(confusion.heatmap.column) == LABELS and confusion.color_scale.max == 6.0
    assert normalised(np.array([[0, 0], [1, 3]])).tolist() == [[0.0, 0.0], [0.25, 0.75]]


# --- the leaderboard -------------------------------------------------------------------------------


def test_leaderboard_ranks_sorts_and_compares_selected_models(
    service: Service, client: HeadstartClient, family: Family
) -> None:
    board = Leaderboard("shapes", client)

    names = {row.model_name for row in board.rows}
    assert {"bob-public", "alice-vector", family.child_name, family.parent_name} <= names
    shown = [row["cells"][1]["text"] for row in board.table.rows]
    assert "bob-private" not in names and "bob-private" not in shown
    assert family.child_name in shown
    # Before a row is selected the chart draws nothing and says what would fill it.
    assert not board.curves.drawn and "select models to compare" in board.curves.empty.value
    vector = next(row for row in board.rows if row.model_id == service.models["alice-vector"])
    assert vector.rank is None and not vector.comparable

    by_accuracy = board.sort_by("accuracy", descending=True)
    scores = [row.accuracy for row in by_accuracy if row.accuracy is not None]
    assert len(scores) >= 3 and scores == sorted(scores, reverse=True)
    assert by_accuracy[-1].accuracy is None  # unranked rows go last either way
    assert board.table.sort == {"column": board.table.titles.index("accuracy"), "descending": True}
    by_name = board.sort_by("model")
    ranked_names = [row.model_name for row in by_name if row.model_name]
    assert ranked_names == sorted(ranked_names, key=str.lower)
    with pytest.raises(ValueError, match="unknown column"):
        board.sort_by("colour")

    board.select([family.child, service.models["bob-public"]])

    assert set(board.compared) == {family.child, service.models["bob-public"]}
    assert set(board.table.selected) == set(board.compared)
    assert board.curves.drawn
    assert f"{family.child_name} v1" in board.per_class.value
    assert "bob-public v1" in board.per_class.value
    assert all(label in board.per_class.value for label in LABELS)
    # The child was trained here, so its curves are drawn; bob's zoo model has none and says so.
    assert board.curves.labels == [f"{family.child_name} train", f"{family.child_name} val"]
    assert [len(mark.x) for mark in board.curves.figure.marks] == [2, 2]
    assert "bob-public" in board.status.value
    board.curves.metric.value = "loss"
    assert board.curves.y_axis.label == "loss"

    board.select([])
    assert board.compared == [] and board.curves.figure.marks == [] and not board.curves.drawn


# --- evaluation ------------------------------------------------------------------------------------


def test_evaluate_on_a_split_shows_accuracy_and_a_confusion_matrix(
    service: Service, client: HeadstartClient
) -> None:
    evaluate = Evaluate(client, model_id=service.models["bob-public"])
    assert service.models["bob-private"] not in [value for _, value in evaluate.model.options]
    assert evaluate.dataset.value is not None  # a dataset is picked from the start
    evaluate.dataset.value = client.datasets.get("shapes").id
    evaluate.split.value = "test"

    evaluation = evaluate.run_split()

    assert evaluation is not None and evaluation.accuracy is not None
    assert evaluation.model_id == service.models["bob-public"] and evaluation.split == "test"
    assert f"{evaluation.accuracy:.3f}" in evaluate.summary.value
    for label in LABELS:
        assert label in evaluate.per_class.value
    assert list(evaluate.confusion.heatmap.row) == LABELS
    assert int(evaluate.confusion.counts.sum()) == evaluation.count > 0


def test_evaluate_on_uploaded_images_shows_thumbnails_with_top_k(
    service: Service, client: HeadstartClient, shapes_folder: Path
) -> None:
    evaluate = Evaluate(client, model_id=service.models["bob-public"])
    evaluate.top_k.value = 2
    files = [shapes_folder / "circle" / "0.png", shapes_folder / "triangle" / "1.png"]

    predictions = evaluate.predict_files(files)

    assert [p["file"] for p in predictions] == ["0.png", "1.png"]
    assert all(len(p["top"]) == 2 and p["top"][0]["label"] in LABELS for p in predictions)
    assert all(p["top"][0]["probability"] >= p["top"][1]["probability"] for p in predictions)
    tiles = evaluate.thumbnails.children
    assert len(tiles) == 2
    images = [widget for tile in tiles for widget in _walk(tile) if isinstance(widget, w.Image)]
    assert [image.value for image in images] == [f.read_bytes() for f in files]
    assert f"{predictions[0]['top'][0]['probability']:.0%}" in tiles[0].children[1].value
    # Files of one name from two label folders are told apart by their folder.
    same_name = [shapes_folder / "circle" / "0.png", shapes_folder / "square" / "0.png"]
    evaluate.predict_files(same_name)
    captions = [tile.children[1].value for tile in evaluate.thumbnails.children]
    assert "circle/0.png" in captions[0] and "square/0.png" in captions[1]

    # The same through the FileUpload, as a browser would fill it.
    picture = files[1].read_bytes()
    evaluate.upload.value = (
        {
            "name": "mine.png",
            "type": "image/png",
            "size": len(picture),
            "content": memoryview(picture),
            "last_modified": datetime.now(UTC),
        },
    )
    assert [p["file"] for p in evaluate.predictions] == ["0000-mine.png"]
    assert len(evaluate.thumbnails.children) == 1


def test_evaluate_says_what_is_missing(client: HeadstartClient) -> None:
    evaluate = Evaluate(client)
    evaluate.model.value = None

    assert evaluate.run_split() is None
    assert "pick a model" in evaluate.status.value and "headstart-error" in evaluate.status.value


# --- the model card --------------------------------------------------------------------------------


def test_model_card_shows_facts_lineage_trainings_and_places(
    service: Service, client: HeadstartClient, family: Family
) -> None:
    card = ModelCard(family.child, client)

    for fact in (family.child_name, "alice", "classifier", "circle, square, triangle", "public", "small_cnn"):
        assert fact in card.facts.value
    assert [p.id for p in card.parents] == [family.parent]
    assert card.lineage.value.index(family.parent_name) < card.lineage.value.index(family.child_name)
    assert f"<b>{family.child_name}</b> (this model)" in card.lineage.value
    assert [t.id for t in card.history] == [family.training]
    assert family.training in card.training_table.order
    card.training_table.value = family.training  # a selected training's curves alone
    assert card.curves.labels == [f"{family.child_name} train", f"{family.child_name} val"]

    parent_card = ModelCard(family.parent, client)
    assert family.child in [c.id for c in parent_card.child_models]
    assert family.child_name in parent_card.lineage.value
    # The training that made the child is alice's run of the parent, so its card lists it too.
    assert family.training in [t.id for t in parent_card.history]

    places = card.load_places()
    assert "shapes" in places and places["shapes"].rank is not None
    assert f"#{places['shapes'].rank} of" in card.places.value


def test_owner_actions_only_for_the_owner(service: Service, client: HeadstartClient, family: Family) -> None:
    mine = ModelCard(family.parent, client)
    theirs = ModelCard(service.models["bob-public"], client)

    assert mine.is_owner and not theirs.is_owner
    for action in (mine.publish_button, mine.rename_button, mine.download_button, mine.delete_button):
        assert action in list(_walk(mine))
    for action in (theirs.publish_button, theirs.rename_button, theirs.download_button, theirs.delete_button):
        assert action not in list(_walk(theirs))
    assert theirs.actions.layout.display == "none"
    assert "bob" in theirs.facts.value


def test_owner_buttons_rename_publish_download_and_delete_after_confirming(
    client: HeadstartClient, tmp_path: Path
) -> None:
    model_id = _tiny(client, _unique("card-actions"), public=False)
    card = ModelCard(model_id, client)

    card.rename.value = renamed = _unique("renamed")
    card.rename_button.click()
    assert client.models.get(model_id).name == renamed
    assert renamed in card.title.value

    assert card.unpublish_button.disabled and not card.publish_button.disabled
    card.publish_button.click()
    assert client.models.get(model_id).public is True
    assert card.publish_button.disabled
    card.unpublish_button.click()
    assert client.models.get(model_id).public is False

    card.download_path.value = str(tmp_path)
    card.download_button.click()
    saved = list(tmp_path.glob("*.keras"))
    assert len(saved) == 1 and zipfile.is_zipfile(saved[0])

    assert card.delete_button.disabled
    card.delete_button.click()  # a click that reaches it anyway still asks for the confirmation
    assert client.models.get(model_id).id == model_id
    assert "tick the confirmation" in card.status.value

    card.confirm_delete.value = True
    assert not card.delete_button.disabled
    card.delete_button.click()
    with pytest.raises(NotFound):
        client.models.get(model_id)
    assert card.deleted and card.delete_button.disabled


# --- the studio ------------------------------------------------------------------------------------


def test_studio_puts_the_widgets_in_seven_tabs_built_when_opened(
    service: Service, client: HeadstartClient
) -> None:
    tab = studio(client)

    assert isinstance(tab, w.Tab)
    titles = ("Models", "Datasets", "Train", "Sweep", "Leaderboard", "Benchmark", "Evaluate")
    assert tab.titles == TITLES == titles
    assert [len(slot.children) for slot in tab.children] == [1, 0, 0, 0, 0, 0, 0]
    picker = next(x for x in _walk(tab.children[0]) if isinstance(x, ModelPicker))
    picker.value = service.models["bob-public"]
    cards = [x for x in _walk(tab.children[0]) if isinstance(x, ModelCard)]
    assert [c.catalog_id for c in cards] == [service.models["bob-public"]]
    assert any(isinstance(x, NewModel) for x in _walk(tab.children[0]))  # folded below the picker

    tab.selected_index = 1
    assert any(isinstance(x, AddDataset) for x in _walk(tab.children[1]))
    tab.selected_index = 3
    assert any(isinstance(x, SweepSetup) for x in _walk(tab.children[3]))
    tab.selected_index = 4
    boards = [x for x in _walk(tab.children[4]) if isinstance(x, Leaderboard)]
    assert len(boards) == 1 and boards[0].dataset == "shapes" and boards[0].rows
    tab.selected_index = 5
    benchmarks = [x for x in _walk(tab.children[5]) if isinstance(x, BenchmarkBoard)]
    assert len(benchmarks) == 1 and benchmarks[0].table is not None and benchmarks[0].table.rows
    benchmarks[0].close()
    tab.selected_index = 6
    assert any(isinstance(x, Evaluate) for x in _walk(tab.children[6]))
