"""SweepSetup and SweepBoard against a real catalog service whose jobs run on Dask.

The boards are built with `follow=False` and polled by hand with `refresh()`.
"""

from __future__ import annotations

import time

import pytest

from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import SweepGrid, TrainingConfig
from headstart.widgets.sweep import SweepBoard, SweepSetup, parse_values
from tests.widgets.conftest import Service


def until_done(board: SweepBoard, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while board.running:
        assert time.monotonic() < deadline, f"timed out: {board.phase.value}, {board.status.value}"
        time.sleep(0.2)
        board.refresh()


def test_the_setup_counts_heads_and_refuses_a_bad_field(service: Service, client: HeadstartClient) -> None:
    setup = SweepSetup(client)
    assert "<b>6</b> heads" in setup.count.value  # 3 rates x 2
    assert setup.start_button.disabled and "pick a model and a dataset" in setup.count.value
    setup.models.value, setup.datasets.value = service.models["alice-vector"], "shapes"
    assert not setup.start_button.disabled
    setup.fields["optimizer"].value = "adam, sgd"
    assert "<b>12</b> heads" in setup.count.value
    setup.draws.value = 5
    assert "<b>5</b> heads" in setup.count.value
    setup.fields["learning_rate"].value = "0.001,,0.01"
    assert "blank" in setup.count.value and setup.start_button.disabled
    setup.fields["learning_rate"].value = "fast"
    assert "not a comma-separated list" in setup.count.value and setup.start_button.disabled
    for field in setup.fields.values():
        field.value = ""
    assert "needs at least one list" in setup.count.value and setup.start_button.disabled
    with pytest.raises(Invalid, match="unknown optimizer 'lion'"):
        parse_values("adam, lion", str, "optimizers")


def test_the_board_ranks_the_runs_and_decides_each(service: Service, client: HeadstartClient) -> None:
    begun = client.sweeps.begin(
        service.models["alice-vector"],
        "shapes",
        SweepGrid(learning_rate=[1e-3, 1e-2, 1e-1]),
        config=TrainingConfig(epochs=3, batch_size=8),
    )
    board = SweepBoard(begun.id, client, follow=False)
    until_done(board)
    assert board.sweep is not None and [r.status for r in board.sweep.runs] == ["candidate"] * 3
    assert board.progress.value == board.progress.max == 9 and board.progress.bar_style == "success"
    # One row per run, ranked by val accuracy, with its settings and scores.
    assert board.table.titles == ["#", "training", "settings", "epochs", "val acc", "status"]
    rows = [[c["text"] for c in row["cells"]] for row in board.table.rows]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    scores = [run.val_accuracy for run in board.sweep.runs]
    assert scores == sorted(scores, reverse=True)
    assert [row[4] for row in rows] == [f"{s:.3f}" for s in scores]
    assert rows[0][2].startswith("learning_rate ")
    # The best runs' curves, a train and a val line each.
    assert board.curves.labels == [f"#{n} {kind}" for n in (1, 2, 3) for kind in ("train", "val")]
    best, second = board.sweep.runs[0].id, board.sweep.runs[1].id
    # Keep and Discard appear for a selected candidate only.
    assert board.decision.layout.display == "none"
    board.table.value = best
    assert board.decision.layout.display == "flex" and "run #1" in board.chosen.value
    board.keep_button.click()
    assert "kept run" in board.status.value
    assert board.table.value == best and board.decision.layout.display == "none"  # decided: no buttons
    board.table.value = second
    board.discard_button.click()
    statuses = {run.id: run.status for run in client.sweeps.get(begun.id).runs}
    assert statuses[best] == "kept_both" and statuses[second] == "discarded"
    assert [m.name for m in client.models.list() if m.name == f"sweep {begun.id} #1"]
    assert [row["cells"][5]["text"] for row in board.table.rows] == ["kept_both", "discarded", "candidate"]
    board.table.value = board.sweep.runs[2].id
    assert board.decision.layout.display == "flex"


def test_starting_from_the_setup_shows_its_board(service: Service, client: HeadstartClient) -> None:
    setup = SweepSetup(client)
    setup.models.value = service.models["alice-vector"]
    setup.datasets.value = "shapes"
    setup.fields["learning_rate"].value = "0.01, 0.1"
    setup.fields["label_smoothing"].value = ""  # the default, the base config's
    setup.fields["epochs"].value = "2"
    setup.start_button.click()
    assert setup.status.value.count("sweep started") == 1 and setup.board is not None
    assert setup.output.children == (setup.board,)
    setup.models.value = None
    setup.start_button.click()
    assert "pick a model and a dataset first" in setup.status.value
    until_done(setup.board)
    assert len(setup.board.sweep.runs) == 2
