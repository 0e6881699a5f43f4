"""The model and dataset pickers against a real catalog service, signed in as alice."""

from __future__ import annotations

from headstart.kernels.client import HeadstartClient
from headstart.widgets.grid import MISSING
from headstart.widgets.pickers import DatasetPicker, ModelPicker
from tests.widgets.conftest import Service


def names(picker: ModelPicker) -> set[str]:
    return {m.name for m in picker.models}


def test_lists_what_alice_may_see_and_never_bobs_private_model(
    service: Service, client: HeadstartClient
) -> None:
    picker = ModelPicker(client)
    assert {"bob-public", "alice-vector"} <= names(picker)
    assert "bob-private" not in names(picker)
    assert service.models["bob-private"] not in picker.grid.order
    assert picker.value is None  # nothing is chosen for the user


def texts(picker: ModelPicker | DatasetPicker, key: object) -> dict[str, str]:
    """A row of the picker's grid as drawn: each column's title and the cell's text."""
    row = next(r for r in picker.grid.rows if r["key"] == key)
    return {title: c["text"] for title, c in zip(picker.grid.titles, row["cells"], strict=True)}


def test_the_grid_shows_owner_kind_labels_size_visibility_score_and_update(
    service: Service, client: HeadstartClient
) -> None:
    picker = ModelPicker(client)
    assert picker.grid.titles == [
        "name", "owner", "kind", "labels", "params", "size", "visibility", "best score", "updated"
    ]  # fmt: skip
    bob = texts(picker, service.models["bob-public"])
    assert bob["name"] == "bob-public" and bob["owner"] == "bob" and bob["kind"] == "classifier"
    assert bob["labels"] == "circle, square, triangle" and bob["visibility"] == "public"
    assert bob["size"].endswith(" MB") and bob["params"][0].isdigit()
    # The platform scores every visible model on the shapes test split: bob's classifier is ranked.
    assert bob["best score"].endswith("%")
    vector = texts(picker, service.models["alice-vector"])
    assert vector["kind"] == "feature vector" and vector["labels"] == "none"
    assert vector["best score"] == MISSING  # a feature vector is never ranked
    # Numbers are right-aligned, text left.
    align = {c["title"]: c["align"] for c in picker.grid.columns}
    assert align["params"] == align["size"] == align["best score"] == "right" and align["name"] == "left"


def test_sorting_a_column_orders_the_models_and_keeps_the_choice(
    service: Service, client: HeadstartClient
) -> None:
    picker = ModelPicker(client)
    picker.value = service.models["bob-public"]
    by_size = picker.grid.sort_by("size")
    sizes = [m.size_bytes for m in sorted(picker.models, key=lambda m: by_size.index(m.id))]
    assert sizes == sorted(sizes)
    assert picker.grid.sort_by("name", descending=True) == [
        m.id for m in sorted(picker.models, key=lambda m: m.name.lower(), reverse=True)
    ]
    assert picker.value == service.models["bob-public"]
    # A column's filter box narrows the grid further; the picker's own filters still apply.
    alices = {m.id for m in picker.models if m.owner == "alice"}
    assert alices and set(picker.grid.filter("owner", "alice")) == alices
    assert picker.value is None  # bob's model is filtered out of sight: no longer chosen


def test_scope_kind_and_search_filter_the_list(service: Service, client: HeadstartClient) -> None:
    picker = ModelPicker(client)
    picker.scope.value = "mine"
    assert "alice-vector" in names(picker)
    assert all(m.owner == "alice" for m in picker.models)
    assert "bob-public" not in names(picker)

    picker.scope.value = "public"
    assert {"bob-public", "alice-vector"} <= names(picker)
    assert all(m.public for m in picker.models)

    picker.scope.value = "all"
    picker.kind.value = "feature_vector"
    assert "alice-vector" in names(picker) and "bob-public" not in names(picker)
    assert all(m.kind == "feature_vector" for m in picker.models)

    picker.kind.value = None
    picker.search.value = "BOB-pub"
    assert names(picker) == {"bob-public"}
    picker.search.value = "triangle"  # labels are searched too
    assert "bob-public" in names(picker) and "alice-vector" not in names(picker)


def test_same_type_as_a_dataset_keeps_models_with_its_label_set(
    service: Service, client: HeadstartClient
) -> None:
    picker = ModelPicker(client, same_type_as="shapes")
    assert picker.same_type.value == "shapes"
    assert "bob-public" in names(picker)
    assert "alice-vector" not in names(picker)  # a feature vector has no labels
    assert all(set(m.labels or []) == {"circle", "square", "triangle"} for m in picker.models)
    picker.same_type.value = None
    assert "alice-vector" in names(picker)


def test_constructor_filters_apply_from_the_start(client: HeadstartClient) -> None:
    picker = ModelPicker(client, scope="mine", kind="classifier")
    assert all(m.owner == "alice" and m.kind == "classifier" for m in picker.models)
    assert "alice-vector" not in names(picker)


def test_selection_shows_details_and_survives_filters_that_keep_it(
    service: Service, client: HeadstartClient
) -> None:
    picker = ModelPicker(client)
    assert "pick a model" in picker.details.value
    picker.value = service.models["bob-public"]
    assert picker.grid.selected == [service.models["bob-public"]]
    assert "bob-public" in picker.details.value and "circle, square, triangle" in picker.details.value
    assert "public" in picker.details.value

    picker.search.value = "bob"
    assert picker.value == service.models["bob-public"]
    picker.search.value = "alice-vector"  # the chosen model is filtered out: no choice, not another one
    assert picker.value is None
    assert "pick a model" in picker.details.value


def test_refresh_sees_a_model_added_since(client: HeadstartClient) -> None:
    picker = ModelPicker(client)
    model = client.models.create(
        name="picker-refresh", architecture="small_cnn", weights=None, options={"filters": 2}
    )
    try:
        assert "picker-refresh" not in names(picker)
        picker.refresh()
        assert "picker-refresh" in names(picker)
        picker.scope.value = "mine"
        assert "picker-refresh" in names(picker)
        picker.scope.value = "public"
        assert "picker-refresh" not in names(picker)  # private
    finally:
        client.models.delete(model.id)


def test_dataset_picker_lists_searches_and_shows_details(client: HeadstartClient) -> None:
    picker = DatasetPicker(client)
    assert "shapes" in {d.name for d in picker.datasets}
    assert picker.value is None
    picker.value = "shapes"
    details = picker.details.value
    for part in ("circle, square, triangle", "train images", "val images", "test images", "resize policy"):
        assert part in details
    shapes = next(d for d in picker.datasets if d.name == "shapes")
    assert f"<b style='white-space:nowrap'>train images</b><span>{shapes.counts['train']}</span>" in details

    picker.search.value = "no such dataset anywhere"
    assert picker.datasets == [] and picker.value is None
    picker.search.value = "square"  # by label
    assert "shapes" in {d.name for d in picker.datasets}


def test_errors_show_in_the_status_line(service: Service) -> None:
    broken = HeadstartClient(service.url, "not-a-token")
    picker = DatasetPicker(broken)
    assert "headstart-error" in picker.status.value
    assert picker.datasets == []
    broken.close()
