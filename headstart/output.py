"""How the CLI prints: aligned tables for people, JSON for scripts, tqdm bars on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click


def to_plain(value: Any) -> Any:
    """Pydantic models, lists and dicts as JSON-safe data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_plain(value), indent=2, default=str))


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A left-aligned text table with a header row."""
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def fields(record: dict, keys: Sequence[str]) -> str:
    width = max(len(k) for k in keys)
    return "\n".join(f"{k.ljust(width)}  {fmt(record.get(k))}" for k in keys)


@contextmanager
def progress_bar(
    description: str, total: int | None = None, unit: str = "it"
) -> Iterator[Callable[..., None]]:
    """A tqdm bar on stderr; yields `update(done, total=None)` taking a running count."""
    from tqdm import tqdm

    # Bars are for people: a pipe or a log gets only the one-line results and errors.
    quiet = not sys.stderr.isatty()
    bar = tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=quiet,
    )

    def update(done: int, total: int | None = None, **postfix: Any) -> None:
        if bar.disable:
            return
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if postfix:
            bar.set_postfix({k: fmt(v) for k, v in postfix.items()}, refresh=False)

    try:
        yield update
    finally:
        bar.close()
