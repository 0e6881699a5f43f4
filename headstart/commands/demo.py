"""`headstart demo`: the whole product on demo data, from ingest to leaderboards."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.commands.base import Context, command


@command(None, "demo")
@click.option(
    "--shapes-per-class", type=int, default=120, show_default=True, help="Generated images per shape."
)
@click.option(
    "--epochs", type=int, default=12, show_default=True, help="Epochs on shapes; twice as many on digits."
)
@click.option(
    "--digits-limit", type=int, default=None, help="Use only this many digits (default: all 1,797)."
)
def demo(ctx: Context, shapes_per_class: int, epochs: int, digits_limit: int | None) -> None:
    """Ingest the demo datasets, train a small CNN on shapes, transfer it to digits, rank both."""
    from headstart.demo import run_demo

    run_demo(
        ctx.api,
        Path(ctx.home) / "demo-data",
        shapes_per_class=shapes_per_class,
        epochs=epochs,
        digits_limit=digits_limit,
        as_json=ctx.json,
    )
