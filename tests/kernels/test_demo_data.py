"""The demo datasets: layout, image format, determinism, and that they ingest as they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from headstart.kernels.engine.demo_data import write_digits, write_shapes
from headstart.kernels.engine.ingest import ingest
from headstart.kernels.engine.limits import IngestLimits


def files_of(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.png"))}


def test_shapes_layout_and_images(tmp_path: Path) -> None:
    root = write_shapes(tmp_path / "shapes", per_class=5)
    assert root == tmp_path / "shapes"
    assert sorted(path.name for path in root.iterdir()) == ["circle", "square", "triangle"]
    files = files_of(root)
    assert len(files) == 15
    assert "triangle/4.png" in files
    image = Image.open(root / "circle" / "0.png")
    assert image.size == (224, 224)
    assert image.mode == "RGB"
    pixels = np.asarray(image).reshape(-1, 3)
    # A shape on a background: exactly two colours, and the shape covers part of the picture.
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) == 2
    assert counts.max() < len(pixels)


def test_shapes_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    first = files_of(write_shapes(tmp_path / "a", per_class=4, seed=7))
    again = files_of(write_shapes(tmp_path / "b", per_class=4, seed=7))
    other = files_of(write_shapes(tmp_path / "c", per_class=4, seed=8))
    assert first == again
    assert first.keys() == other.keys()
    assert first != other
    assert len(set(first.values())) == len(first)  # no two images alike


def test_digits_layout_and_images(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    root = write_digits(
        tmp_path / "digits", limit=30, progress=lambda done, total: seen.append((done, total))
    )
    files = files_of(root)
    assert len(files) == 30
    assert seen[-1] == (30, 30)
    assert sorted(path.name for path in root.iterdir()) == [str(n) for n in range(10)]
    image = Image.open(root / "0" / "0.png")  # the first sample of load_digits() is a zero
    assert image.size == (224, 224)
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all()
    assert pixels.min() < 30 and pixels.max() > 200


def test_ingest_modules_do_not_import_keras(tmp_path: Path) -> None:
    # A fresh interpreter: this test process may have Keras loaded by other tests.
    script = (
        "import sys, pathlib\n"
        "from headstart.kernels.engine import archive, demo_data, images, ingest, shards\n"
        f"demo_data.write_shapes(pathlib.Path({str(tmp_path / 's')!r}), per_class=1)\n"
        "loaded = [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_shapes_ingest_as_is(tmp_path: Path) -> None:
    root = write_shapes(tmp_path / "shapes", per_class=4)
    dest = tmp_path / "ds"
    dest.mkdir()
    result = ingest(root, dest, limits=IngestLimits())
    assert result.labels == ("circle", "square", "triangle")
    assert sum(result.counts.values()) == 12
