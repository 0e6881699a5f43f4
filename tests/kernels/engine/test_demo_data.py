"""The demo datasets (shapes, digits, Fashion-MNIST): layout, image format, determinism, bad source files,
and that they ingest as they are."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.kernels.engine.demo_data import fashion_available, write_digits, write_fashion, write_shapes
from headstart.kernels.engine.fashion_mnist import open_fashion_split
from headstart.kernels.engine.ingest import ingest
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.errors import Invalid, NotFound
from tests.conftest import FASHION_PER_CLASS, fashion_mnist_dir


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
        "demo_data.fashion_available()\n"
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
    assert result.counts == {"train": 6, "val": 3, "test": 3}


# Fashion-MNIST: the real files from Debian's package, and small IDX files written here.

WORDS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx_bytes(values: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, as the format's description spells it out."""
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(n.to_bytes(4, "big") for n in values.shape)
    return header + values.astype(np.uint8).tobytes()


def fake_fashion(folder: Path, per_class: int = 3, *, images: bytes | None = None) -> Path:
    """A tiny Fashion-MNIST: per class, `per_class` images whose every pixel is the class number."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(10, dtype=np.uint8), per_class)
    pictures = np.broadcast_to(labels[:, None, None], (len(labels), 28, 28))
    for prefix in ("train", "t10k"):
        data = {
            "images-idx3": idx_bytes(pictures) if images is None else images,
            "labels-idx1": idx_bytes(labels),
        }
        for kind, content in data.items():
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(content))
    return folder


def test_fashion_folders_are_the_class_words_in_the_official_order(tmp_path: Path) -> None:
    source = fake_fashion(tmp_path / "source", per_class=3)
    root = write_fashion(tmp_path / "out", per_class=2, directory=source)
    assert sorted(path.name for path in root.iterdir()) == sorted(WORDS)
    for number, word in enumerate(WORDS):
        files = sorted((root / word).iterdir())
        assert len(files) == 2
        for file in files:
            image = Image.open(file)
            assert (image.size, image.mode) == ((28, 28), "L")
            assert (np.asarray(image) == number).all()  # label k of the files is WORDS[k]


def test_fashion_writes_the_asked_images_per_split(tmp_path: Path) -> None:
    directory = fashion_mnist_dir()
    seen: list[tuple[int, int]] = []
    root = write_fashion(
        tmp_path / "a",
        per_class=3,
        val_per_class=2,
        test_per_class=4,
        seed=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert sorted(path.name for path in root.iterdir()) == ["test", "train", "val"]
    wanted = {"train": 3, "val": 2, "test": 4}
    for split, count in wanted.items():
        assert sorted(path.name for path in (root / split).iterdir()) == sorted(WORDS)
        for word in WORDS:
            names = [path.name for path in (root / split / word).iterdir()]
            assert len(names) == count
            source = "test" if split == "test" else "train"
            assert all(name.startswith(f"{source}-") for name in names), names
    train_names = {path.name for path in (root / "train").rglob("*.png")}
    assert not train_names & {path.name for path in (root / "val").rglob("*.png")}
    assert seen[-1] == (90, 90) and len(seen) == 90

    # Each file is the official image at its index, under its official label's word.
    official = open_fashion_split("test", directory)
    some = next((root / "test" / "bag").iterdir())
    index = int(some.stem.split("-")[1])
    assert WORDS[official.labels[index]] == "bag"
    (_, pixels), *_ = official.iter_images({index})
    assert (np.asarray(Image.open(some)) == pixels).all()

    again = files_of(write_fashion(tmp_path / "b", per_class=3, val_per_class=2, test_per_class=4, seed=1))
    other = files_of(write_fashion(tmp_path / "c", per_class=3, val_per_class=2, test_per_class=4, seed=2))
    first = files_of(root)
    assert again == first and other.keys() != first.keys()
    # More images with the same seed keep every image of fewer.
    more = files_of(write_fashion(tmp_path / "d", per_class=5, val_per_class=2, test_per_class=6, seed=1))
    assert first.items() <= more.items()


def test_fashion_refuses_missing_and_malformed_files(tmp_path: Path) -> None:
    available, message = fashion_available(tmp_path / "nowhere")
    assert not available and message.startswith(
        "using the generated shapes and scikit-learn's digits instead"
    )
    with pytest.raises(NotFound) as missing:
        write_fashion(tmp_path / "out", per_class=1, directory=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "train-images-idx3-ubyte.gz") in missing.value.message
    assert "install Debian's package dataset-fashion-mnist" in missing.value.message
    assert missing.value.message in message

    good = np.zeros((30, 28, 28), dtype=np.uint8)
    cases = {
        "truncated": (idx_bytes(good)[:-100], "truncated (23,420 of 23,520 bytes read)"),
        "bad magic": (b"\x00\x00\x09\x03" + idx_bytes(good)[4:], "header 00000903 is not IDX"),
        "wrong side": (idx_bytes(np.zeros((30, 32, 32), dtype=np.uint8)), "shape is (30, 32, 32)"),
        "too few": (idx_bytes(good[:20]), "it has 30 labels for 20 images"),
    }
    for case, (content, reason) in cases.items():
        source = fake_fashion(tmp_path / case, images=content)
        assert fashion_available(source)[0] is (case == "truncated"), case  # headers alone are checked
        with pytest.raises(Invalid) as malformed:
            write_fashion(tmp_path / f"{case}-out", per_class=3, directory=source)
        assert reason in malformed.value.message, case
        assert f"{source / 'train-'}" in malformed.value.message, case
        assert "dataset-fashion-mnist" in malformed.value.message, case

    # A gzip stream cut short, and a label past the ten classes.
    cut = fake_fashion(tmp_path / "cut")
    whole = (cut / "train-images-idx3-ubyte.gz").read_bytes()
    (cut / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        Invalid, match=r"train-images-idx3-ubyte\.gz is malformed: its gzip data is unreadable"
    ):
        write_fashion(tmp_path / "cut-out", per_class=3, directory=cut)
    eleven = fake_fashion(tmp_path / "eleven")
    (eleven / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(30, 10))))
    with pytest.raises(Invalid, match=r"a label 10, past the 10 classes"):
        write_fashion(tmp_path / "eleven-out", per_class=3, directory=eleven)


def test_fashion_refuses_more_images_than_a_class_has(tmp_path: Path) -> None:
    source = fake_fashion(tmp_path / "source", per_class=3)
    with pytest.raises(Invalid, match=r"^Fashion-MNIST has 3 training images of t-shirt; 4 were asked for$"):
        write_fashion(tmp_path / "out", per_class=3, val_per_class=1, test_per_class=1, directory=source)
    with pytest.raises(Invalid, match="val_per_class needs test_per_class"):
        write_fashion(tmp_path / "out", per_class=1, val_per_class=1, directory=source)
    assert not (tmp_path / "out").exists()


def test_a_fashion_folder_ingests_with_its_own_test_split(fashion_folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    dest.mkdir()
    result = ingest(fashion_folder, dest, limits=IngestLimits())
    assert result.labels == tuple(sorted(WORDS))
    assert result.manifest["split_policy"] == "folders"
    assert result.counts == {split: 10 * n for split, n in FASHION_PER_CLASS.items()}
