"""Two small demo datasets written as `<label>/<n>.png` folders, ready to upload and ingest.

`write_digits` upsamples scikit-learn's bundled 8x8 digits; `write_shapes` draws coloured shapes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 224
SHAPES = ("circle", "square", "triangle")

# Fast PNG compression: the files are temporary upload material, not an archive.
_PNG_LEVEL = 1


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
