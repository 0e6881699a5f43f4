"""`headstart demo`: the whole product on demo data, from ingest to leaderboards."""

from __future__ import annotations

from pathlib import Path

import click

from headstart.commands.base import Context, command


@command(None, "demo")
@click.option(
    "--per-class",
    type=int,
    default=100,
    show_default=True,
    help="Fashion-MNIST training images per class (an eighth as many more go to val).",
)
@click.option(
    "--test-per-class",
    type=int,
    default=50,
    show_default=True,
    help="Fashion-MNIST test images per class, from the official test set.",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="The most epochs of each training (default: 30 with early stopping on Fashion-MNIST; "
    "12 on shapes and twice as many on digits).",
)
@click.option(
    "--fashion-mnist-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read Fashion-MNIST's IDX files from this folder (default: where Debian's package "
    "dataset-fashion-mnist puts them); without them the demo uses shapes and digits.",
)
@click.option(
    "--shapes-per-class",
    type=int,
    default=120,
    show_default=True,
    help="Without Fashion-MNIST: generated images per shape.",
)
@click.option(
    "--digits-limit",
    type=int,
    default=None,
    help="Without Fashion-MNIST: use only this many digits (default: all 1,797).",
)
def demo(
    ctx: Context,
    per_class: int,
    test_per_class: int,
    epochs: int | None,
    fashion_mnist_dir: Path | None,
    shapes_per_class: int,
    digits_limit: int | None,
) -> None:
    """Re-train a pretrained EfficientNet-Lite0 on Fashion-MNIST beside a random-init one and a
    small CNN, rank them, and classify a photo with the ImageNet classifier.

    Without Fashion-MNIST (Debian's package dataset-fashion-mnist), train a small CNN on generated
    shapes and transfer it to scikit-learn's digits instead; the first line says which data it uses.
    """
    from headstart.demo import check_sizes, run_demo

    check_sizes(per_class, test_per_class, epochs)  # before the catalog is opened
    run_demo(
        ctx.api,
        Path(ctx.home) / "demo-data",
        per_class=per_class,
        test_per_class=test_per_class,
        epochs=epochs,
        shapes_per_class=shapes_per_class,
        digits_limit=digits_limit,
        fashion_dir=fashion_mnist_dir,
        as_json=ctx.json,
    )
