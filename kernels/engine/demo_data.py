"""Demo datasets written as `<label>/<n>.png` folders (or `<split>/<label>/<n>.png`), ready to ingest.

`write_fashion` picks images of the real Fashion-MNIST (Debian's package); `write_digits` upsamples
scikit-learn's bundled 8x8 digits; `write_shapes` draws coloured shapes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from headstart.kernels.engine.fashion_mnist import (
    FASHION_LABELS,
    FASHION_MNIST_DIR,
    FashionSplit,
    fashion_mnist_missing,
    open_fashion_split,
)
from headstart.kernels.errors import Invalid

SIZE = 224
SHAPES = ("circle", "square", "triangle")

# Fast PNG compression: the files are temporary upload material, not an archive.
_PNG_LEVEL = 1


def fashion_available(directory: Path = FASHION_MNIST_DIR) -> tuple[bool, str]:
    """Whether Fashion-MNIST can be written, and a one-line message saying which data a demo uses."""
    missing = fashion_mnist_missing(directory)
    if missing is None:
        return True, "using Fashion-MNIST from Debian's package dataset-fashion-mnist"
    return False, f"using the generated shapes and scikit-learn's digits instead of Fashion-MNIST: {missing}"


def write_fashion(
    dest: Path,
    *,
    per_class: int,
    val_per_class: int = 0,
    test_per_class: int | None = None,
    seed: int = 0,
    directory: Path = FASHION_MNIST_DIR,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write Fashion-MNIST images as 28x28 grey PNGs in folders named by the classes' words.

    `per_class` training images per class, picked by `seed`. With `test_per_class`, the layout is
    `train|val|test/<label>/`: test holds that many of each class from the official test set, val
    `val_per_class` more from the official training images (none of them in train). Without it, the
    layout is `<label>/` and the ingest splits the images itself. A larger `per_class` (or test set)
    with the same seed keeps every image of a smaller one. Files are named after their index in the
    official set (`train-01234.png`), so the same call writes the same files.
    """
    if per_class < 1 or val_per_class < 0 or (test_per_class is not None and test_per_class < 1):
        raise Invalid("per_class must be at least 1, test_per_class at least 1 and val_per_class at least 0")
    if val_per_class and test_per_class is None:
        raise Invalid("val_per_class needs test_per_class: without split folders the ingest picks val")
    dest = Path(dest)
    train = open_fashion_split("train", directory)
    picked, held_out = _pick(train.labels, per_class, val_per_class, seed, "training")
    # (official split, folder prefix, {index: label}), in the order the files are written.
    plan: list[tuple[FashionSplit, str, dict[int, str]]] = []
    if test_per_class is None:
        plan.append((train, "", picked))
    else:
        test = open_fashion_split("test", directory)
        plan += [(train, "train/", picked), (train, "val/", held_out)]
        plan.append((test, "test/", _pick(test.labels, test_per_class, 0, seed, "test")[0]))
    total = sum(len(chosen) for _, _, chosen in plan)
    done = 0
    for split, folder, chosen in plan:
        for label in sorted(set(chosen.values())):
            (dest / f"{folder}{label}").mkdir(parents=True, exist_ok=True)
        for index, image in split.iter_images(set(chosen)):
            path = dest / f"{folder}{chosen[index]}" / f"{split.name}-{index:05d}.png"
            Image.fromarray(image).save(path, compress_level=_PNG_LEVEL)
            done += 1
            if progress is not None:
                progress(done, total)
    return dest


def _pick(
    labels: np.ndarray, first: int, last: int, seed: int, what: str
) -> tuple[dict[int, str], dict[int, str]]:
    """Per class, `first` indices from the front of a seeded shuffle and `last` from its back."""
    front: dict[int, str] = {}
    back: dict[int, str] = {}
    for number, label in enumerate(FASHION_LABELS):
        indices = np.flatnonzero(labels == number)
        if first + last > len(indices):
            raise Invalid(
                f"Fashion-MNIST has {len(indices):,} {what} images of {label}; "
                f"{first + last:,} were asked for"
            )
        # One generator per class, so a class's picks do not depend on how many the others take.
        order = np.random.default_rng([seed, number]).permutation(indices)
        front.update((int(i), label) for i in order[:first])
        back.update((int(i), label) for i in order[len(order) - last :])
    return front, back


def write_digits(
    dest: Path, *, limit: int | None = None, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write scikit-learn's 1,797 handwritten digits (labels "0".."9") as 224x224 RGB PNGs."""
    from sklearn.datasets import load_digits  # scikit-learn is slow to import and only needed here

    digits = load_digits()
    images, targets = digits.images, digits.target
    count = len(images) if limit is None else min(limit, len(images))
    dest = Path(dest)
    for label in sorted({str(int(t)) for t in targets[:count]}):
        (dest / label).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        # Samples are 0..16 intensities of ink, shown as bright strokes on black.
        grey = (images[n] * (255 / 16)).round().astype(np.uint8)
        picture = Image.fromarray(grey).resize((SIZE, SIZE), Image.Resampling.BILINEAR).convert("RGB")
        picture.save(dest / str(int(targets[n])) / f"{n}.png", compress_level=_PNG_LEVEL)
        if progress is not None:
            progress(n + 1, count)
    return dest


def write_shapes(dest: Path, *, per_class: int = 60, seed: int = 0) -> Path:
    """Write `per_class` images each of circles, squares and triangles; the same seed, the same files."""
    rng = random.Random(seed)
    dest = Path(dest)
    for label in SHAPES:
        (dest / label).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            _draw_shape(label, rng).save(dest / label / f"{n}.png", compress_level=_PNG_LEVEL)
    return dest


def _draw_shape(label: str, rng: random.Random) -> Image.Image:
    background = _colour(rng)
    foreground = _colour(rng)
    # Keep the shape visible: redraw its colour until it stands apart from the background.
    while sum(abs(a - b) for a, b in zip(background, foreground, strict=True)) < 150:
        foreground = _colour(rng)
    picture = Image.new("RGB", (SIZE, SIZE), background)
    draw = ImageDraw.Draw(picture)
    radius = rng.randint(24, 80)
    cx = rng.randint(radius, SIZE - radius)
    cy = rng.randint(radius, SIZE - radius)
    if label == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=foreground)
    else:
        sides = 4 if label == "square" else 3
        draw.regular_polygon((cx, cy, radius), sides, rotation=rng.uniform(0, 360), fill=foreground)
    return picture


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))
