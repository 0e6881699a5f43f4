"""The Table every widget's grid is: formats by column kind, sorts, filters and keeps the selection."""

from __future__ import annotations

from datetime import datetime

import pytest

from headstart.widgets.grid import MISSING, Column, Table, cell, keeps, labels_summary

COLUMNS = (
    Column("name"),
    Column("labels", "labels"),
    Column("params", "count"),
    Column("size", "megabytes"),
    Column("score", "percent"),
    Column("updated", "date"),
)
IMAGENET = [f"class {n}" for n in range(1000)]


def table(**kwargs: object) -> Table:
    grid = Table(COLUMNS, **kwargs)  # type: ignore[arg-type]
    grid.show(
        [
            (1, ["shapes", ["circle", "square", "triangle"], 15_800, 240_000, 1.0, datetime(2026, 12, 1)]),
            (2, ["Fashion", ["T-shirt", "Trouser", "Pullover", "Dress"], 3_400_000, 13_400_000, 0.83, None]),
            (3, ["imagenet", IMAGENET, 4_600_000, 18_000_000, None, datetime(2026, 12, 2, 9, 30)]),
        ]
    )
    return grid


def text(grid: Table, key: int, title: str) -> dict:
    row = next(r for r in grid.rows if r["key"] == key)
    return row["cells"][grid.titles.index(title)]


def test_cells_are_formatted_by_their_column_kind() -> None:
    grid = table()
    assert text(grid, 1, "params") == {"text": "15.8k", "tip": "15,800"}
    assert text(grid, 2, "params")["text"] == "3.4M"
    assert text(grid, 1, "size")["text"] == "0.24 MB"
    assert text(grid, 2, "score") == {"text": "83.0%"}
    assert text(grid, 3, "score") == {"text": MISSING} and text(grid, 2, "updated") == {"text": MISSING}
    assert text(grid, 3, "updated") == {"text": "2026-12-02 09:30"}
    assert [c["align"] for c in grid.columns] == ["left", "left", "right", "right", "right", "left"]


def test_long_label_lists_are_summarised_with_the_full_list_on_hover() -> None:
    grid = table()
    assert text(grid, 1, "labels") == {"text": "circle, square, triangle"}  # short: no hover needed
    fashion = text(grid, 2, "labels")
    assert fashion["text"] == "T-shirt, Trouser, … (4)"
    assert fashion["tip"] == "T-shirt, Trouser, Pullover, Dress"
    imagenet = text(grid, 3, "labels")
    assert imagenet["text"].endswith("(1000)") and len(imagenet["text"]) < 40
    assert imagenet["tip"].startswith("class 0, class 1") and imagenet["tip"].endswith("and 800 more")
    assert labels_summary([]) == "none"


def test_sorting_puts_numbers_in_numeric_order_and_missing_values_last() -> None:
    grid = table()
    assert grid.sort_by("score") == [2, 1, 3]
    assert grid.sort_by("score", descending=True) == [1, 2, 3]  # missing last both ways
    assert grid.sort_by("name") == [2, 3, 1]  # case-insensitive: Fashion, imagenet, shapes
    assert grid.sort_by("params", descending=True) == [3, 2, 1]
    assert grid.sort_by(None) == [1, 2, 3]
    # The browser sorts by sending the same trait a click on a heading sets.
    grid.sort = {"column": 3, "descending": True}
    assert grid.order == [3, 2, 1]
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        grid.sort_by("nope")


def test_filters_match_words_in_text_and_comparisons_on_numbers() -> None:
    grid = table()
    assert grid.filter("name", "FASH") == [2]
    assert grid.filter("name", "") == [1, 2, 3]
    assert grid.filter("labels", "dress") == [2]  # the full list, not only the cell's summary
    assert grid.filter("labels", "class 999") == [3]
    grid.filter("labels", "")
    assert grid.filter("params", "> 1M") == [2, 3]
    assert grid.filter("params", "<=15.8k") == [1]
    grid.filter("params", "")
    assert grid.filter("score", ">90%") == [1]
    assert grid.filter("score", ">90") == [1]  # a percent column reads a bare number as percent
    assert grid.filter("score", ">= 0.83") == [1, 2]  # or as the fraction it holds
    assert grid.filter("score", "<95") == [2]  # no score: not below anything
    assert grid.total == 3 and len(grid.rows) == 1
    assert keeps(Column("n", "integer"), 5, "banana") is False  # text in a number column: no match


def test_selection_is_one_row_unless_multiple_and_drops_rows_out_of_sight() -> None:
    grid = table()
    grid.selected = [1, 2]
    assert grid.selected == [2] and grid.value == 2
    grid.selected = [99]
    assert grid.selected == [] and grid.value is None
    grid.value = 1
    grid.filter("name", "fash")
    assert grid.value is None  # filtered out: not chosen any more
    several = table(multiple=True)
    several.selected = [3, 1]
    assert several.selected == [3, 1]
    several.show([(1, ["shapes", [], 1, 1, None, None])])
    assert several.selected == [1]


def test_a_row_must_have_a_value_per_column() -> None:
    with pytest.raises(ValueError, match="row 7 has 1 values for 6 columns"):
        Table(COLUMNS).show([(7, ["only a name"])])


def test_cell_of_nan_is_missing() -> None:
    assert cell(Column("x", "decimal"), float("nan")) == {"text": MISSING}
    assert cell(Column("x", "decimal"), 0.12345) == {"text": "0.123"}
