"""BenchmarkBoard against a real catalog service whose probe jobs run on Dask.

The board is built with `follow=False` and polled by hand with `refresh()`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from headstart.kernels.client import HeadstartClient
from headstart.widgets.benchmark import PENDING_COLOR, BenchmarkBoard
from tests.widgets.conftest import Service


def until_scored(board: BenchmarkBoard, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while board.refresh():
        assert time.monotonic() < deadline, f"timed out: {board.title.value}, {board.status.value}"
        time.sleep(0.3)


def test_the_heatmap_draws_the_table_and_its_mean_ranks(service: Service, client: HeadstartClient) -> None:
    board = BenchmarkBoard(client, ["shapes"], follow=False)
    first = board.table
    assert first is not None and first.datasets == ["shapes"]
    # Whatever is pending is drawn grey (NaN under the null colour), whatever is scored in colour.
    drawn = np.asarray(board.heatmap.color, dtype=float)
    for i, row in enumerate(first.rows):
        assert math.isnan(drawn[i, 0]) == (row.cells[0].state != "scored")
    assert board.heatmap.null_color == PENDING_COLOR
    until_scored(board)
    table = board.table
    assert table.pending == 0 and "0 cells pending" not in board.title.value
    assert list(board.heatmap.column) == table.datasets
    assert [str(label) for label in board.heatmap.row] == [
        f"{row.name} · {row.body[:8]} · mean rank {row.mean_rank:.2f}" for row in table.rows
    ]
    # Beside the heatmap, the same table as sortable rows: a body's facts, mean rank and accuracies.
    assert board.ranking.titles == ["body", "sha", "architecture", "weights", "models", "mean rank", "shapes"]
    assert board.ranking.order == [row.body for row in table.rows]  # best mean rank first
    first_cells = [c["text"] for c in board.ranking.rows[0]["cells"]]
    assert first_cells[-1] == f"{table.rows[0].cells[0].accuracy:.1%}"
    expected = [[cell.accuracy for cell in row.cells] for row in table.rows]
    assert np.asarray(board.heatmap.color, dtype=float).tolist() == expected
    # alice sees her vector and bob's public classifier; their bodies' rows are named for them.
    names = {m.name for row in table.rows for m in row.models}
    assert names == {"bob-public", "alice-vector"} or names >= {"bob-public", "alice-vector"}
    assert "bob-private" not in names


def test_a_click_opens_the_cells_per_class_figures(service: Service, client: HeadstartClient) -> None:
    board = BenchmarkBoard(client, ["shapes"], follow=False)
    until_scored(board)
    assert "click a cell" in board.details.value
    # What a click on the first cell sends from the browser: a JSON list of [row, column] pairs.
    board.heatmap.set_state({"selected": [[0, 0]]})
    assert board.heatmap.selected.tolist() == [[0, 0]]
    row = board.table.rows[0]
    cell = client.benchmark.cell(row.body, "shapes")
    assert f"accuracy {cell.cell.accuracy:.3f}" in board.details.value
    for label in ("circle", "square", "triangle"):
        assert f"<td>{label}</td>" in board.details.value
    assert board.details.value.count("<tr>") == 1 + 3  # a header, three labels
    assert list(board.confusion.heatmap.row) == ["circle", "square", "triangle"]
    assert int(board.confusion.counts.sum()) == cell.cell.count
    assert board.select(5, 5) is None  # outside the table: nothing
