"""`headstart.widgets` hands out its widgets by name, each from its own module."""

from __future__ import annotations

import importlib
import inspect

import pytest

import headstart.widgets as widgets


@pytest.mark.parametrize("name", widgets.__all__)
def test_every_exported_name_is_the_widget_not_its_module(name: str) -> None:
    value = getattr(widgets, name)
    assert inspect.isclass(value) or inspect.isfunction(value), value
    # Asked again after its module was imported, as other code may do first.
    importlib.import_module(value.__module__)
    assert getattr(importlib.import_module("headstart.widgets"), name) is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        widgets.Nothing  # noqa: B018


def test_epoch_ticks_are_whole_and_at_most_ten() -> None:
    from headstart.widgets.base import epoch_ticks

    assert epoch_ticks([3, 1, 2, 2]) == [1.0, 2.0, 3.0]
    assert epoch_ticks([]) == []
    many = epoch_ticks(range(1, 41))
    assert len(many) <= 10 and many[0] == 1.0 and all(t == int(t) for t in many)
