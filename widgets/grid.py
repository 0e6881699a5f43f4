"""`Table`: a data grid of typed columns, sortable and filterable by column, with row selection.

The kernel holds the rows and decides what is shown: it formats each cell by its column's kind,
sorts, filters and keeps the selection, so every widget's table behaves the same way and is tested
in Python. The browser draws the rows it is sent as an HTML table (grid.js, grid.css) in the lab's
own colours, and sends back clicks on headings and rows and what is typed in the filter boxes.

Why not ipydatagrid: its 1.4.0 paints cells on a canvas, so a cell cannot carry its full text on
hover and a test cannot read a row; its front end asks for bqplot's JavaScript ~0.5 as a shared
singleton where bqplot 0.13 ships 0.6.1; and setting a tooltip on it breaks its view.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anywidget
import traitlets as t

Kind = Literal["text", "integer", "count", "megabytes", "percent", "decimal", "labels", "date"]
NUMERIC: frozenset[str] = frozenset({"integer", "count", "megabytes", "percent", "decimal"})
MISSING = "\u2013"  # an en dash
LABELS_SHOWN = 2  # a labels cell names the first few and how many in all (three fit whole)
TIP_LABELS = 200  # a hover names at most this many; ImageNet's 1000 would fill the screen
HERE = Path(__file__).parent


@dataclass(frozen=True)
class Column:
    """A heading and the kind of value under it, which decides its format, order and alignment."""

    title: str
    kind: Kind = "text"

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC


def missing(value: Any) -> bool:
    """No value: None, or a NaN where a figure was not computed."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def count_text(n: int) -> str:
    """A count as people compare them: 950, 15.8k, 3.4M."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}k"
    return str(n)


def labels_summary(labels: Sequence[str], most: int = LABELS_SHOWN) -> str:
    """The first few labels and how many in all: `tench, goldfish, … (1000)`."""
    if not labels:
        return "none"
    if len(labels) <= most + 1:  # "a, b, c" is no longer than "a, b, … (3)"
        return ", ".join(labels)
    return f"{', '.join(labels[:most])}, … ({len(labels)})"


def labels_tip(labels: Sequence[str]) -> str:
    """Every label for the hover, up to TIP_LABELS of them."""
    if len(labels) <= TIP_LABELS:
        return ", ".join(labels)
    return ", ".join(labels[:TIP_LABELS]) + f", and {len(labels) - TIP_LABELS} more"


def cell(column: Column, value: Any) -> dict[str, Any]:
    """One cell as the browser draws it: its text, and its full text on hover when that says more."""
    if missing(value):
        return {"text": MISSING}
    kind = column.kind
    if kind == "labels":
        labels = [str(v) for v in value]
        summary = labels_summary(labels)
        return (
            {"text": summary, "tip": labels_tip(labels)}
            if summary != ", ".join(labels)
            else {"text": summary}
        )
    if kind == "integer":
        return {"text": f"{int(value):,}"}
    if kind == "count":
        return {"text": count_text(int(value)), "tip": f"{int(value):,}"}
    if kind == "megabytes":
        return {"text": f"{value / 1_000_000:.2f} MB", "tip": f"{int(value):,} bytes"}
    if kind == "percent":
        return {"text": f"{value:.1%}"}
    if kind == "decimal":
        return {"text": f"{value:.3f}"}
    if kind == "date":
        return {"text": value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)}
    return {"text": str(value)}


def sort_key(column: Column, value: Any) -> tuple:
    """A present value's place in its column: numbers as numbers, text without case."""
    if column.numeric:
        return (float(value),)
    if column.kind == "labels":
        return (len(value), ", ".join(value).lower())
    if column.kind == "date":
        return (value.timestamp() if isinstance(value, datetime) else str(value),)
    return (str(value).lower(),)


_COMPARISON = re.compile(r"^\s*(<=|>=|<|>|=)?\s*(-?[\d.,]+)\s*(%|k|m|mb)?\s*$", re.IGNORECASE)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
_SCALE = {"%": 0.01, "k": 1e3, "m": 1e6, "mb": 1e6}


def keeps(column: Column, value: Any, query: str) -> bool:
    """Whether a cell passes its column's filter box.

    Text columns keep cells holding every word typed. Number columns also take a comparison,
    `>0.9`, `<= 20k`, `>=85%` or `<2mb`, against the value itself rather than its rounded text.
    """
    query = query.strip()
    if not query:
        return True
    if column.numeric:
        match = _COMPARISON.match(query)
        if match and match.group(1):
            if missing(value):
                return False
            try:
                bound = float(match.group(2).replace(",", "")) * _SCALE.get((match.group(3) or "").lower(), 1)
            except ValueError:
                return False
            shown = float(value) * (
                100 if column.kind == "percent" and not match.group(3) and bound > 1 else 1
            )
            return _COMPARE[match.group(1)](shown, bound)
    if column.kind == "labels" and value is not None:
        text = ", ".join(str(v) for v in value).lower()  # every label, beyond what the hover names
    else:
        drawn = cell(column, value)
        text = f"{drawn['text']} {drawn.get('tip', '')}".lower()
    return all(word in text for word in query.lower().split())


class Table(anywidget.AnyWidget):
    """Rows of typed columns: click a heading to sort, type in a heading's box to filter, click rows
    to select them (`selected` holds their keys; one at most unless `multiple`)."""

    _esm = HERE / "grid.js"
    _css = HERE / "grid.css"

    columns = t.List(t.Dict(), help="each column's title and alignment, as the browser draws them").tag(
        sync=True
    )
    rows = t.List(t.Dict(), help="the rows shown, sorted and filtered: key and cells").tag(sync=True)
    total = t.Int(0, help="how many rows there are before the filters").tag(sync=True)
    sort = t.Dict({}, help="the sorted column's index and direction, or nothing").tag(sync=True)
    filters = t.List(t.Unicode(), help="what each column's filter box holds").tag(sync=True)
    selected: t.List[Any] = t.List(help="the keys of the selected rows").tag(sync=True)
    multiple = t.Bool(False, help="whether a click adds a row to the selection").tag(sync=True)
    empty = t.Unicode("nothing to show", help="what the table says when it has no rows").tag(sync=True)
    max_height = t.Unicode("320px", help="the height past which the rows scroll").tag(sync=True)

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        multiple: bool = False,
        empty: str = "nothing to show",
        max_height: str = "320px",
        **kwargs: Any,
    ) -> None:
        self.kinds = list(columns)
        self.data: list[tuple[Hashable, list[Any]]] = []
        super().__init__(
            columns=self._drawn(columns),
            filters=[""] * len(columns),
            multiple=multiple,
            empty=empty,
            max_height=max_height,
            **kwargs,
        )
        self.observe(lambda _: self._draw(), names=["sort", "filters"])
        self.observe(self._selection_changed, names="selected")

    @staticmethod
    def _drawn(columns: Sequence[Column]) -> list[dict[str, str]]:
        return [
            {"title": c.title, "align": "right" if c.numeric else "left", "kind": c.kind} for c in columns
        ]

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Other columns (a table whose columns follow its data); rows, sorting and filters start over."""
        with self.hold_sync():
            self.kinds = list(columns)
            self.data = []
            self.sort = {}
            self.filters = [""] * len(columns)
            self.columns = self._drawn(columns)
            self._draw()

    @property
    def titles(self) -> list[str]:
        return [c.title for c in self.kinds]

    @property
    def order(self) -> list[Hashable]:
        """The keys of the rows shown, in the order shown."""
        return [row["key"] for row in self.rows]

    @property
    def value(self) -> Hashable | None:
        """The selected row's key (the first one's, with `multiple`), or None."""
        return self.selected[0] if self.selected else None

    @value.setter
    def value(self, key: Hashable | None) -> None:
        self.selected = [] if key is None else [key]

    def show(self, data: Sequence[tuple[Hashable, Sequence[Any]]]) -> None:
        """Hold these rows, each a key and its values in column order, and draw them."""
        for key, values in data:
            if len(values) != len(self.kinds):
                raise ValueError(f"row {key!r} has {len(values)} values for {len(self.kinds)} columns")
        self.data = [(key, list(values)) for key, values in data]
        self._draw()

    def sort_by(self, title: str | None, *, descending: bool = False) -> list[Hashable]:
        """Sort by a column, as a click on its heading would (None: the order given); returns the keys."""
        self.sort = {} if title is None else {"column": self._index(title), "descending": descending}
        return self.order

    def filter(self, title: str, query: str) -> list[Hashable]:
        """Type `query` into a column's filter box; returns the keys of the rows that stay."""
        filters = list(self.filters)
        filters[self._index(title)] = query
        self.filters = filters
        return self.order

    def _index(self, title: str) -> int:
        if title not in self.titles:
            raise ValueError(f"unknown column {title!r}; choose one of {', '.join(self.titles)}")
        return self.titles.index(title)

    def _draw(self) -> None:
        filters = list(self.filters) + [""] * (len(self.kinds) - len(self.filters))
        shown = [
            (key, values)
            for key, values in self.data
            if all(keeps(c, v, q) for c, v, q in zip(self.kinds, values, filters, strict=False))
        ]
        index = self.sort.get("column")
        if index is not None and 0 <= int(index) < len(self.kinds):
            at, column = int(index), self.kinds[int(index)]
            # Missing values last whichever way the column is read.
            present = [r for r in shown if not missing(r[1][at])]
            absent = [r for r in shown if missing(r[1][at])]
            present.sort(key=lambda r: sort_key(column, r[1][at]), reverse=bool(self.sort.get("descending")))
            shown = present + absent
        with self.hold_sync():
            self.total = len(self.data)
            self.rows = [
                {"key": key, "cells": [cell(c, v) for c, v in zip(self.kinds, values, strict=False)]}
                for key, values in shown
            ]
            # A row that is filtered out or gone is no longer chosen: nothing the user cannot see is.
            keep = [k for k in self.selected if k in {key for key, _ in shown}]
            if keep != list(self.selected):
                self.selected = keep

    def _selection_changed(self, change: dict[str, Any]) -> None:
        known = {row["key"] for row in self.rows}
        chosen = [k for k in change["new"] if k in known]
        if not self.multiple:
            chosen = chosen[-1:]
        if chosen != list(change["new"]):
            self.selected = chosen
