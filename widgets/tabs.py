"""`studio()`: every headstart widget in one Tab, for a user who wants it all in one cell.

A tab's content is built the first time it is opened: each widget asks the service for its lists
(and a leaderboard may score models), so a studio that shows only its first tab costs only that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from headstart.kernels.client import HeadstartClient
from headstart.widgets.base import Status, replace_options, resolve_client

TITLES = ("Models", "Datasets", "Train", "Sweep", "Leaderboard", "Benchmark", "Evaluate")


def _models_tab(client: HeadstartClient) -> w.Widget:
    """The model picker, and the card of whichever model is picked."""
    from headstart.widgets.adding import NewModel
    from headstart.widgets.card import ModelCard
    from headstart.widgets.pickers import ModelPicker

    picker = ModelPicker(client)
    slot = w.VBox()

    def show(_: Any = None) -> None:
        chosen = picker.value
        slot.children = (ModelCard(chosen, client),) if chosen is not None else ()

    picker.grid.observe(show, names="selected")
    show()
    new = NewModel(client)
    new.added = lambda _: picker.refresh()
    return w.VBox([picker, slot, folded("New model", new)])


def _datasets_tab(client: HeadstartClient) -> w.Widget:
    from headstart.widgets.adding import AddDataset
    from headstart.widgets.pickers import DatasetPicker

    picker = DatasetPicker(client)
    add = AddDataset(client)
    add.added = lambda _: picker.refresh()
    return w.VBox([picker, folded("Add a dataset", add)])


def folded(title: str, content: w.Widget) -> w.Accordion:
    """A form out of the way until opened."""
    return w.Accordion(children=[content], titles=(title,), selected_index=None)


def _train_tab(client: HeadstartClient) -> w.Widget:
    from headstart.widgets.training import TrainingSetup

    return TrainingSetup(client)


def _sweep_tab(client: HeadstartClient) -> w.Widget:
    from headstart.widgets.sweep import SweepSetup

    return SweepSetup(client)


def _leaderboard_tab(client: HeadstartClient) -> w.Widget:
    """A dataset dropdown over the leaderboard of the chosen dataset."""
    from headstart.widgets.leaderboard import Leaderboard

    status = Status()
    chooser = w.Dropdown(description="dataset")
    slot = w.VBox()
    try:
        replace_options(chooser, [(d.name, d.name) for d in client.datasets.list()])
    except Exception as error:
        status.error(error)

    def show(_: Any = None) -> None:
        slot.children = (Leaderboard(chooser.value, client),) if chooser.value is not None else ()

    chooser.observe(show, names="value")
    if chooser.value is None and chooser.options:
        chooser.index = 0  # observed: shows the first dataset's board
    else:
        show()
    return w.VBox([chooser, status, slot])


def _benchmark_tab(client: HeadstartClient) -> w.Widget:
    from headstart.widgets.benchmark import BenchmarkBoard

    return BenchmarkBoard(client)


def _evaluate_tab(client: HeadstartClient) -> w.Widget:
    from headstart.widgets.evaluate import Evaluate

    return Evaluate(client)


BUILDERS: tuple[Callable[[HeadstartClient], w.Widget], ...] = (
    _models_tab,
    _datasets_tab,
    _train_tab,
    _sweep_tab,
    _leaderboard_tab,
    _benchmark_tab,
    _evaluate_tab,
)


def studio(client: HeadstartClient | None = None) -> w.Tab:
    """One Tab with Models, Datasets, Train, Sweep, Leaderboard, Benchmark and Evaluate, each built when first
    opened."""
    client = resolve_client(client)
    slots = [w.VBox() for _ in TITLES]
    built: set[int] = set()

    def build(index: int | None) -> None:
        if index is None or index in built:
            return
        built.add(index)
        status = Status()
        try:
            slots[index].children = (BUILDERS[index](client),)
        except Exception as error:
            # One tab failing (the service down, say) must not take the others with it, and opening
            # it again tries again.
            built.discard(index)
            status.error(error)
            slots[index].children = (status,)

    tab = w.Tab(children=slots, titles=TITLES)
    tab.observe(lambda change: build(change["new"]), names="selected_index")
    build(tab.selected_index)
    return tab
