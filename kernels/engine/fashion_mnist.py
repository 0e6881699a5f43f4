"""Fashion-MNIST as Debian's package `dataset-fashion-mnist` installs it: gzipped IDX files, read here.

IDX is the MNIST format: two zero bytes, a type code (0x08 for unsigned bytes), the number of
dimensions, each dimension as a big-endian uint32, then the values. The files are read in chunks, so
memory stays bounded by a chunk whatever the selection.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.kernels.errors import Invalid, NotFound

__all__ = [
    "FASHION_LABELS",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_PACKAGE",
    "FashionSplit",
    "fashion_mnist_missing",
    "open_fashion_split",
]

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
# Where the Debian package puts the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official class order of the label files (0 is "T-shirt/top", 9 "Ankle boot"), as folder names.
FASHION_LABELS = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_UNSIGNED_BYTE = 0x08
_SIDE = 28
_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class FashionSplit:
    """One official split: its label indices (all of them, 1 byte each) and a way to stream its images."""

    name: str
    images_path: Path
    labels: np.ndarray

    def iter_images(self, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (index, 28x28 uint8 image) for the wanted indices, in file order."""
        with _open_idx(self.images_path) as (file, shape):
            # Stop after the last wanted image: gzip cannot seek, and the rest need not be inflated.
            end = min(shape[0], max(wanted, default=-1) + 1)
            for start in range(0, end, _CHUNK_ROWS):
                rows = min(_CHUNK_ROWS, end - start)
                chunk = _read(file, rows * _SIDE * _SIDE, self.images_path)
                block = np.frombuffer(chunk, dtype=np.uint8).reshape(rows, _SIDE, _SIDE)
                for offset in range(rows):
                    if start + offset in wanted:
                        yield start + offset, block[offset]


def fashion_mnist_missing(directory: Path = FASHION_MNIST_DIR) -> str | None:
    """None when all four Fashion-MNIST files are there with sound headers; else a one-line reason.

    Only the headers are read (a few bytes each), so asking is cheap.
    """
    try:
        for split in _FILES:
            _check_headers(split, Path(directory))
    except (NotFound, Invalid) as error:
        return error.message
    return None


def open_fashion_split(split: str, directory: Path = FASHION_MNIST_DIR) -> FashionSplit:
    """The "train" (60,000 images) or "test" (10,000) split: its labels read, its images' header checked.

    Raises `NotFound` naming the file and the package when a file is missing, `Invalid` naming the
    file when one is truncated or malformed.
    """
    images_path, labels_path = _check_headers(split, Path(directory))
    with _open_idx(labels_path) as (file, shape):
        labels = np.frombuffer(_read(file, shape[0], labels_path), dtype=np.uint8)
        if _read(file, 1, labels_path, exact=False):
            raise Invalid(_malformed(labels_path, "data past the end its header gives"))
    if labels.size and labels.max() >= len(FASHION_LABELS):
        raise Invalid(_malformed(labels_path, f"a label {labels.max()}, past the 10 classes"))
    return FashionSplit(split, images_path, labels)


def _check_headers(split: str, directory: Path) -> tuple[Path, Path]:
    if split not in _FILES:
        raise Invalid(f"Fashion-MNIST has no split {split!r}; it has train and test")
    images_path, labels_path = (directory / name for name in _FILES[split])
    with _open_idx(images_path) as (_, images):
        if len(images) != 3 or images[1:] != (_SIDE, _SIDE):
            raise Invalid(_malformed(images_path, f"its shape is {images}, not (n, 28, 28)"))
    with _open_idx(labels_path) as (_, labels):
        if len(labels) != 1:
            raise Invalid(_malformed(labels_path, f"its shape is {labels}, not (n,)"))
    if labels[0] != images[0]:
        raise Invalid(_malformed(labels_path, f"it has {labels[0]:,} labels for {images[0]:,} images"))
    return images_path, labels_path


@contextmanager
def _open_idx(path: Path) -> Iterator[tuple[gzip.GzipFile, tuple[int, ...]]]:
    """Open a gzipped IDX file of unsigned bytes past its header: yields (file, shape)."""
    if not path.is_file():
        raise NotFound(
            f"Fashion-MNIST file {path} is missing; install Debian's package {FASHION_MNIST_PACKAGE}"
        )
    with gzip.open(path, "rb") as file:
        magic = _read(file, 4, path)
        if magic[:2] != b"\0\0" or magic[2] != _UNSIGNED_BYTE or not 1 <= magic[3] <= 3:
            raise Invalid(_malformed(path, f"its header {magic.hex()} is not IDX of unsigned bytes"))
        yield file, tuple(struct.unpack(f">{magic[3]}I", _read(file, 4 * magic[3], path)))


def _read(file: gzip.GzipFile, size: int, path: Path, *, exact: bool = True) -> bytes:
    try:
        data = file.read(size)
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError; a stream cut short raises EOFError.
        raise Invalid(_malformed(path, f"its gzip data is unreadable ({error})")) from None
    if exact and len(data) != size:
        raise Invalid(_malformed(path, f"it is truncated ({len(data):,} of {size:,} bytes read)"))
    return data


def _malformed(path: Path, why: str) -> str:
    return (
        f"Fashion-MNIST file {path} is malformed: {why}; reinstall Debian's package {FASHION_MNIST_PACKAGE}"
    )
