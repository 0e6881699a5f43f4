"""ingest(): real uploads (folders and zips of PNGs) into shards, stratified splits, refusals, bad files."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.kernels.engine.demo_data import write_shapes
from headstart.kernels.engine.images import decode_image
from headstart.kernels.engine.ingest import ingest
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.engine.shards import DatasetReader
from headstart.kernels.engine.splits import assign_splits
from headstart.kernels.errors import Invalid

LIMITS = IngestLimits()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("upload") / "shapes", per_class=12, seed=3)


def copy_of(source: Path, tmp_path: Path, name: str = "upload") -> Path:
    return Path(shutil.copytree(source, tmp_path / name))


def zipped(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, f"wrapper/{file.relative_to(folder).as_posix()}")
    return path


def natural_splits(folder: Path) -> dict[Path, str]:
    """The split the stratified hash gives each file of a `label/image` folder."""
    files = sorted(folder.rglob("*.png"))
    keys = [(file.parent.name, hashlib.sha256(file.read_bytes()).digest()) for file in files]
    return dict(zip(files, assign_splits(keys), strict=True))


def empty_dir(path: Path) -> Path:
    path.mkdir()
    return path


def fingerprints(dest: Path) -> dict[str, set[tuple[str, str]]]:
    """Per split, the (label, image digest) pairs stored, independent of order and file names."""
    reader = DatasetReader(dest)
    stored: dict[str, set[tuple[str, str]]] = {}
    for split in ("train", "val", "test"):
        pairs = set()
        for images, labels in reader.split(split).iter_batches(7):
            for image, label in zip(images, labels, strict=True):
                pairs.add((reader.labels[label], hashlib.sha256(image.tobytes()).hexdigest()))
        stored[split] = pairs
    return stored


def test_folder_ingest_writes_a_readable_dataset(shapes: Path, tmp_path: Path) -> None:
    dest = empty_dir(tmp_path / "ds")
    result = ingest(shapes, dest, limits=LIMITS)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["format"] == 1
    assert manifest["labels"] == ["circle", "square", "triangle"]
    assert manifest["image_size"] == [224, 224]
    assert manifest["resize_policy"] == "center_crop"
    assert manifest["split_policy"] == "stratified-hash"
    assert manifest["skipped"] == []
    assert manifest["source_files"] == 36
    # 12 images a label: one each to val and test, ten to train.
    assert result.counts == {"train": 30, "val": 3, "test": 3}
    for split, entry in manifest["splits"].items():
        assert entry["count"] == result.counts[split]
        assert all((dest / shard).exists() for shard in entry["shards"])

    # Every stored image is the decoded file, under its folder's label, in the split its label's
    # content ranks pick.
    expected: dict[str, set[tuple[str, str]]] = {"train": set(), "val": set(), "test": set()}
    for file, split in natural_splits(shapes).items():
        digest = hashlib.sha256(decode_image(file.read_bytes(), max_pixels=10**8).tobytes()).hexdigest()
        expected[split].add((file.parent.name, digest))
    assert fingerprints(dest) == expected


def test_same_upload_gives_identical_shards(shapes: Path, tmp_path: Path) -> None:
    first = empty_dir(tmp_path / "a")
    second = empty_dir(tmp_path / "b")
    ingest(shapes, first, limits=LIMITS)
    ingest(shapes, second, limits=LIMITS)
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_stratified_split_survives_renames_and_zipping(shapes: Path, tmp_path: Path) -> None:
    renamed = copy_of(shapes, tmp_path)
    for file in sorted(renamed.rglob("*.png")):
        file.rename(file.with_name(f"renamed-{hashlib.md5(file.name.encode()).hexdigest()}.png"))
    archive = zipped(renamed, tmp_path / "renamed.zip")
    original = empty_dir(tmp_path / "original")
    moved = empty_dir(tmp_path / "moved")
    ingest(shapes, original, limits=LIMITS)
    ingest(archive, moved, limits=LIMITS)
    assert fingerprints(original) == fingerprints(moved)


def test_split_folders_override_the_hash_split(shapes: Path, tmp_path: Path) -> None:
    upload = tmp_path / "split-upload"
    placed = {"train": 0, "val": 0, "test": 0}
    for file, natural in natural_splits(shapes).items():
        # Put every image in a split the hash would not choose.
        split = {"train": "test", "val": "train", "test": "val"}[natural]
        target = upload / split / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
        placed[split] += 1
    dest = empty_dir(tmp_path / "ds")
    result = ingest(upload, dest, limits=LIMITS)
    assert result.manifest["split_policy"] == "folders"
    assert result.counts == placed


def test_resize_policy_is_recorded_and_applied(tmp_path: Path) -> None:
    upload = tmp_path / "up"
    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (upload / label).mkdir(parents=True)
        for n in range(3):  # three different images, the fewest that give the label a test image
            Image.new("RGB", (200, 100), (*colour[:2], colour[2] - n)).save(upload / label / f"{n}.png")
    dest = empty_dir(tmp_path / "ds")
    result = ingest(upload, dest, limits=LIMITS, resize_policy="pad")
    assert result.resize_policy == "pad"
    assert result.manifest["resize_policy"] == "pad"
    reader = DatasetReader(dest)
    images = [
        reader.split(split).read(range(len(reader.split(split))))[0] for split in ("train", "val", "test")
    ]
    stored = np.concatenate(images)
    assert len(stored) == 6
    assert (stored[:, :50] == 0).all()  # letterbox bars


def add_bad_files(upload: Path) -> list[str]:
    (upload / "circle" / "empty.png").write_bytes(b"")
    (upload / "square" / "notes.jpg").write_text("this is a text file, not a photo\n")
    good = (upload / "triangle" / "0.png").read_bytes()
    (upload / "triangle" / "cut.png").write_bytes(good[: len(good) // 2])
    Image.new("L", (300, 300)).save(upload / "triangle" / "big.png")
    return ["circle/empty.png", "square/notes.jpg", "triangle/big.png", "triangle/cut.png"]


def test_bad_files_fail_the_ingest_and_are_all_listed(shapes: Path, tmp_path: Path) -> None:
    upload = copy_of(shapes, tmp_path)
    bad = add_bad_files(upload)
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(Invalid, match="4 of 40 files are not usable images") as caught:
        ingest(upload, dest, limits=IngestLimits(max_image_pixels=250 * 250))
    assert list(dest.iterdir()) == []  # the shards written before the first bad file are gone
    detail = caught.value.detail
    assert isinstance(detail, list)
    assert [entry["file"] for entry in detail] == bad
    reasons = {entry["file"]: entry["reason"] for entry in detail}
    assert "empty" in reasons["circle/empty.png"]
    assert "not an image" in reasons["square/notes.jpg"]
    assert "over the limit of 62,500" in reasons["triangle/big.png"]
    assert "cannot decode" in reasons["triangle/cut.png"]
    assert not (dest / "manifest.json").exists()


def test_skip_invalid_records_the_bad_files(shapes: Path, tmp_path: Path) -> None:
    upload = copy_of(shapes, tmp_path)
    bad = add_bad_files(upload)
    dest = empty_dir(tmp_path / "ds")
    result = ingest(upload, dest, limits=IngestLimits(max_image_pixels=250 * 250), skip_invalid=True)
    assert [entry["file"] for entry in result.skipped] == bad
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["skipped"] == list(result.skipped)
    assert manifest["source_files"] == 40
    assert sum(result.counts.values()) == 36


def test_a_label_left_empty_by_skipping_fails(tmp_path: Path) -> None:
    upload = write_shapes(tmp_path / "up", per_class=3)
    for file in (upload / "circle").iterdir():
        file.write_bytes(b"junk")
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(Invalid, match=r"no usable image left.*circle"):
        ingest(upload, dest, limits=LIMITS, skip_invalid=True)
    assert list(dest.iterdir()) == []


def test_refused_upload_writes_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped_file:
        zipped_file.writestr("cat/1.png", b"1")
        zipped_file.writestr("dog/1.png", b"2")
        zipped_file.writestr("../evil.png", b"3")
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(Invalid, match=r"evil\.png"):
        ingest(archive, dest, limits=LIMITS)
    assert list(dest.iterdir()) == []


def test_bad_policy_fails_before_any_work(tmp_path: Path) -> None:
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(Invalid, match="unknown resize policy 'squash'"):
        ingest(tmp_path / "does-not-exist", dest, limits=LIMITS, resize_policy="squash")


def test_dest_must_be_empty(shapes: Path, tmp_path: Path) -> None:
    dest = empty_dir(tmp_path / "ds")
    (dest / "leftover").write_text("x")
    with pytest.raises(Invalid, match="not empty"):
        ingest(shapes, dest, limits=LIMITS)


def test_progress_reports_every_file(shapes: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    ingest(
        shapes,
        empty_dir(tmp_path / "ds"),
        limits=LIMITS,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(n, 36) for n in range(1, 37)]


def two_label_zip(folder: Path, path: Path, *, reverse: bool = False) -> Path:
    """`label/image` entries of `folder` in a zip, in path order or reversed."""
    files = sorted(file for file in folder.rglob("*.png"))
    with zipfile.ZipFile(path, "w") as archive:
        for file in reversed(files) if reverse else files:
            archive.write(file, file.relative_to(folder).as_posix())
    return path


def test_a_small_zip_gets_val_and_test_for_every_label(tmp_path: Path) -> None:
    # The upload that once got train 10, val 2, test 0: 12 images, 2 labels.
    folder = write_shapes(tmp_path / "up", per_class=6, seed=5)
    shutil.rmtree(folder / "triangle")
    dest = empty_dir(tmp_path / "ds")
    result = ingest(two_label_zip(folder, tmp_path / "small.zip"), dest, limits=LIMITS)
    assert result.counts == {"train": 8, "val": 2, "test": 2}
    stored = fingerprints(dest)
    for split in ("val", "test"):
        assert sorted(label for label, _ in stored[split]) == ["circle", "square"]


def test_file_order_does_not_change_the_dataset(shapes: Path, tmp_path: Path) -> None:
    forward = empty_dir(tmp_path / "forward")
    backward = empty_dir(tmp_path / "backward")
    ingest(two_label_zip(shapes, tmp_path / "forward.zip"), forward, limits=LIMITS)
    ingest(two_label_zip(shapes, tmp_path / "backward.zip", reverse=True), backward, limits=LIMITS)
    names = sorted(path.name for path in forward.iterdir())
    assert names == sorted(path.name for path in backward.iterdir())
    for name in names:
        assert (forward / name).read_bytes() == (backward / name).read_bytes(), name


def test_adding_images_moves_few_existing_ones(shapes: Path, tmp_path: Path) -> None:
    before = empty_dir(tmp_path / "before")
    ingest(shapes, before, limits=LIMITS)
    grown = copy_of(shapes, tmp_path)
    extra = write_shapes(tmp_path / "extra", per_class=4, seed=99)
    for file in (extra / "circle").iterdir():
        shutil.copy(file, grown / "circle" / f"new-{file.name}")
    after = empty_dir(tmp_path / "after")
    ingest(grown, after, limits=LIMITS)
    old, new = fingerprints(before), fingerprints(after)
    for split in ("train", "val", "test"):
        # The other labels keep every image where it was.
        assert {p for p in old[split] if p[0] != "circle"} == {p for p in new[split] if p[0] != "circle"}
    moved = {pair for split in old for pair in old[split] if pair not in new[split]}
    assert len(moved) <= 3 * 4, moved
    assert all(label == "circle" for label, _ in moved)


def test_identical_files_of_a_label_share_a_split(tmp_path: Path) -> None:
    upload = write_shapes(tmp_path / "up", per_class=4, seed=2)
    for label in ("circle", "square", "triangle"):
        for copy in range(3):
            shutil.copy(upload / label / "0.png", upload / label / f"copy-{copy}.png")
    dest = empty_dir(tmp_path / "ds")
    result = ingest(upload, dest, limits=LIMITS)
    assert sum(result.counts.values()) == 21
    stored = fingerprints(dest)
    for label in ("circle", "square", "triangle"):
        first = hashlib.sha256(
            decode_image((upload / label / "0.png").read_bytes(), max_pixels=10**8).tobytes()
        )
        holding = [split for split in stored if (label, first.hexdigest()) in stored[split]]
        assert len(holding) == 1
    # 4 different images a label: one of them each to val and test, whatever the copies.
    for split in ("val", "test"):
        assert sorted(label for label, _ in stored[split]) == ["circle", "square", "triangle"]


def test_an_upload_without_a_test_image_is_refused_before_decoding(tmp_path: Path) -> None:
    upload = write_shapes(tmp_path / "up", per_class=2)
    (upload / "triangle" / "1.png").unlink()
    dest = empty_dir(tmp_path / "ds")
    seen: list[tuple[int, int]] = []
    with pytest.raises(Invalid) as refused:
        ingest(upload, dest, limits=LIMITS, progress=lambda done, total: seen.append((done, total)))
    assert refused.value.message == (
        "the test split would be empty: no label has 3 different images, the fewest that give one to "
        "train, val and test (circle: 2, square: 2, triangle: 1)"
    )
    assert refused.value.detail == {"circle": 2, "square": 2, "triangle": 1}
    assert seen == [] and list(dest.iterdir()) == []


def test_duplicates_that_leave_no_test_image_are_refused_and_nothing_stays(tmp_path: Path) -> None:
    upload = write_shapes(tmp_path / "up", per_class=2, seed=4)
    for label in ("circle", "square", "triangle"):
        shutil.copy(upload / label / "0.png", upload / label / "again.png")
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(
        Invalid, match=r"no label has 3 different images.*\(circle: 2, square: 2, triangle: 2\)"
    ):
        ingest(upload, dest, limits=LIMITS)
    assert list(dest.iterdir()) == []


def split_upload(shapes: Path, root: Path, splits: tuple[str, ...]) -> Path:
    """`split/label/image` with the shapes dealt round-robin into the given split folders."""
    for n, file in enumerate(sorted(shapes.rglob("*.png"))):
        target = root / splits[n % len(splits)] / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    return root


def test_split_folders_without_test_images_are_refused(shapes: Path, tmp_path: Path) -> None:
    upload = split_upload(shapes, tmp_path / "up", ("train", "val"))
    dest = empty_dir(tmp_path / "ds")
    with pytest.raises(Invalid, match=r"^the test split would be empty: the upload's test/ folder holds no"):
        ingest(upload, dest, limits=LIMITS)
    assert list(dest.iterdir()) == []

    # A test folder whose every image is skipped as bad leaves the test split empty too.
    spoiled = split_upload(shapes, tmp_path / "spoiled", ("train", "val"))
    (spoiled / "test" / "circle").mkdir(parents=True)
    (spoiled / "test" / "circle" / "junk.png").write_bytes(b"junk")
    dest = empty_dir(tmp_path / "ds2")
    with pytest.raises(Invalid, match=r"test/ folder holds no usable image"):
        ingest(spoiled, dest, limits=LIMITS, skip_invalid=True)
    assert list(dest.iterdir()) == []
