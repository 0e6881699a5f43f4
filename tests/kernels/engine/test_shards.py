"""uint8 shards: the writer's files, and the memory-mapped reader's batches and random access."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headstart.kernels.engine.shards import DatasetReader, ShardWriter
from headstart.kernels.errors import Invalid


def numbered_image(n: int) -> np.ndarray:
    """An image whose every pixel encodes n, so order mistakes show."""
    return np.full((224, 224, 3), n % 256, dtype=np.uint8)


def write_dataset(root: Path, counts: dict[str, int], *, shard_size: int = 4) -> dict[str, list[str]]:
    shards = {}
    for split, count in counts.items():
        writer = ShardWriter(root, split, shard_size=shard_size)
        for n in range(count):
            writer.append(numbered_image(n), n % 3)
        shards[split] = writer.close()
    manifest = {
        "format": 1,
        "labels": ["a", "b", "c"],
        "splits": {split: {"count": counts[split], "shards": shards[split]} for split in counts},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return shards


def test_writer_files_and_shapes(tmp_path: Path) -> None:
    shards = write_dataset(tmp_path, {"train": 10}, shard_size=4)
    assert shards == {"train": ["train-0.npy", "train-1.npy", "train-2.npy"]}
    assert [np.load(tmp_path / name).shape[0] for name in shards["train"]] == [4, 4, 2]
    assert not list(tmp_path.glob("*.partial*"))
    labels = np.load(tmp_path / "train-labels.npy")
    assert labels.dtype == np.int16
    assert labels.tolist() == [n % 3 for n in range(10)]


def test_exact_multiple_of_shard_size(tmp_path: Path) -> None:
    shards = write_dataset(tmp_path, {"val": 8}, shard_size=4)
    assert shards["val"] == ["val-0.npy", "val-1.npy"]
    assert len(DatasetReader(tmp_path).split("val")) == 8


def test_writer_refuses_wrong_shape(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "train")
    with pytest.raises(ValueError, match="uint8"):
        writer.append(np.zeros((224, 224, 3), dtype=np.float32), 0)
    with pytest.raises(ValueError, match="224"):
        writer.append(np.zeros((32, 32, 3), dtype=np.uint8), 0)


def test_round_trip_in_batches_across_shards(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 11}, shard_size=4)
    reader = DatasetReader(tmp_path)
    assert reader.labels == ["a", "b", "c"]
    split = reader.split("train")
    assert len(split) == 11
    batches = list(split.iter_batches(3))
    assert [len(images) for images, _ in batches] == [3, 3, 3, 2]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    assert images.shape == (11, 224, 224, 3)
    assert images.dtype == np.uint8
    assert images[:, 100, 100, 0].tolist() == list(range(11))
    assert labels.tolist() == [n % 3 for n in range(11)]
    assert split.labels.tolist() == labels.tolist()


def test_batches_within_a_shard_are_memory_mapped(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 8}, shard_size=4)
    images, _ = next(DatasetReader(tmp_path).split("train").iter_batches(4))
    assert not images.flags.owndata
    assert not images.flags.writeable
    assert isinstance(images.base, np.memmap) or isinstance(images.base.base, np.memmap)


def test_random_access(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"test": 9}, shard_size=4)
    split = DatasetReader(tmp_path).split("test")
    images, labels = split.read([8, 0, 5, 5])
    assert images[:, 0, 0, 0].tolist() == [8, 0, 5, 5]
    assert labels.tolist() == [2, 0, 2, 2]
    with pytest.raises(IndexError):
        split.read([9])


def test_empty_split(tmp_path: Path) -> None:
    shards = write_dataset(tmp_path, {"train": 2, "val": 0})
    assert shards["val"] == []
    split = DatasetReader(tmp_path).split("val")
    assert len(split) == 0
    assert list(split.iter_batches(32)) == []
    assert split.read([])[0].shape == (0, 224, 224, 3)


def test_unknown_split_and_bad_manifest(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 2})
    with pytest.raises(Invalid, match="no split 'val'"):
        DatasetReader(tmp_path).split("val")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(Invalid, match="unsupported dataset format 99"):
        DatasetReader(tmp_path)


def test_count_mismatch_is_detected(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"train": 5})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["splits"]["train"]["count"] = 6
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Invalid, match="inconsistent"):
        DatasetReader(tmp_path).split("train")
