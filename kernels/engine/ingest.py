"""Turn a dataset upload into uint8 shards and a manifest: decode and resize every image once.

Images decode in a thread pool (Pillow releases the GIL) with a bounded number in flight, and are
written in upload order, so the same upload always gives the same shards. Without split folders, a
label's split quotas depend on all its images (kernels/engine/splits.py), so decoded images wait in a
staging shard until the last one is read, and are then copied into their splits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headstart.kernels.engine.archive import SPLITS, SourceImage, Upload, open_upload
from headstart.kernels.engine.images import IMAGE_SIZE, decode_image, validate_policy
from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.engine.shards import FORMAT, MANIFEST, ShardWriter
from headstart.kernels.engine.splits import SPLIT_POLICY, assign_splits, check_test_split, quotas
from headstart.kernels.errors import HeadstartError, Invalid

__all__ = ["IngestResult", "ingest", "validate_policy"]

_IN_FLIGHT_PER_WORKER = 4
# Staging shards are dataset files too, but hidden: a dest holding one is an ingest in flight.
_STAGING = ".staging"


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored: the labels, images per split, the files it skipped, and the manifest."""

    labels: tuple[str, ...]
    counts: dict[str, int]
    skipped: tuple[dict[str, str], ...]
    resize_policy: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Decoded:
    image: np.ndarray | None
    digest: bytes
    reason: str | None


def ingest(
    source: Path,
    dest: Path,
    *,
    limits: IngestLimits,
    skip_invalid: bool = False,
    resize_policy: str = "center_crop",
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Decode every image of `source` (zip or folder) into shards and `manifest.json` inside `dest`.

    `dest` must be an existing empty folder. Bad files fail the ingest with `Invalid` listing all of
    them, unless `skip_invalid`, which records them in the manifest instead. An upload whose test
    split would be empty is refused, before any decoding where the file counts already show it. The
    manifest is written last, so a dest without one is never a dataset.
    """
    validate_policy(resize_policy)
    dest = Path(dest)
    if not dest.is_dir():
        raise Invalid(f"ingest destination {dest} is not a folder")
    if any(dest.iterdir()):
        raise Invalid(f"ingest destination {dest} is not empty")

    with open_upload(source, limits) as upload:
        folders = upload.has_split_folders
        # The files are an upper bound on the usable images: refuse at once what cannot succeed.
        _check_test_split(upload.images, folders=folders)
        writers = {split: ShardWriter(dest, split) for split in SPLITS}
        staging = None if folders else ShardWriter(dest, _STAGING)
        try:
            bad = _write_splits(upload, writers, staging, limits, skip_invalid, resize_policy, progress)
            shards = {split: writer.close() for split, writer in writers.items()}
        except BaseException:
            _clear(dest, [*writers.values(), *([] if staging is None else [staging])])
            raise
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "labels": upload.labels,
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "resize_policy": resize_policy,
            "split_policy": "folders" if folders else SPLIT_POLICY,
            "splits": {split: {"count": len(writers[split]), "shards": shards[split]} for split in SPLITS},
            "skipped": bad,
            "source_files": len(upload.images),
        }
        labels = tuple(upload.labels)

    partial = dest / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2))
    partial.replace(dest / MANIFEST)
    return IngestResult(
        labels=labels,
        counts={split: len(writers[split]) for split in SPLITS},
        skipped=tuple(bad),
        resize_policy=resize_policy,
        manifest=manifest,
    )


def _write_splits(
    upload: Upload,
    writers: dict[str, ShardWriter],
    staging: ShardWriter | None,
    limits: IngestLimits,
    skip_invalid: bool,
    resize_policy: str,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, str]]:
    """Decode every image into its split's writer (through `staging` for the hash split); the bad files."""
    label_index = {label: index for index, label in enumerate(upload.labels)}
    kept: list[tuple[SourceImage, bytes]] = []
    bad: list[dict[str, str]] = []
    total = len(upload.images)

    def decode(image: SourceImage) -> _Decoded:
        try:
            data = upload.read(image)
            array = decode_image(data, max_pixels=limits.max_image_pixels, policy=resize_policy)
        except HeadstartError as error:
            return _Decoded(None, b"", error.message)
        return _Decoded(array, hashlib.sha256(data).digest(), None)

    for done, (image, result) in enumerate(_decode_in_order(upload, decode), start=1):
        if result.image is None:
            bad.append({"file": image.path, "reason": result.reason or "unreadable"})
        elif skip_invalid or not bad:
            # Once a file is bad and not skippable, the ingest will fail: keep decoding only to
            # list every bad file, and stop writing.
            kept.append((image, result.digest))
            target = staging if staging is not None else writers[image.split or "train"]
            target.append(result.image, label_index[image.label])
        if progress is not None:
            progress(done, total)

    if bad and not skip_invalid:
        raise Invalid(
            f"{len(bad)} of {total} files are not usable images, such as {bad[0]['file']!r} "
            f"({bad[0]['reason']})",
            detail=bad,
        )
    _check_every_label_kept(upload, bad)
    if staging is None:
        _check_test_split([image for image, _ in kept], folders=True)
    else:
        _place_staged(staging, kept, writers, label_index)
    return bad


def _clear(dest: Path, writers: list[ShardWriter]) -> None:
    """Remove what a failed ingest wrote: dest was empty when it began, so all of it is the ingest's."""
    for writer in writers:
        with contextlib.suppress(Exception):
            writer.close()  # closes its open shard file
    for path in dest.iterdir():
        path.unlink()


def _check_test_split(images: list[SourceImage], *, folders: bool) -> None:
    """Refuse images that leave the test split empty: by folder, or by the stratified quotas."""
    if folders:
        test = Counter(image.label for image in images if image.split == "test")
        check_test_split(test, Counter(image.label for image in images), folders=True)
    else:
        # Before decoding, each file counts as a distinct image: an upper bound on what is usable.
        sizes = Counter(image.label for image in images)
        check_test_split({label: quotas(n)[2] for label, n in sizes.items()}, sizes, folders=False)


def _place_staged(
    staging: ShardWriter,
    kept: list[tuple[SourceImage, bytes]],
    writers: dict[str, ShardWriter],
    label_index: dict[str, int],
) -> None:
    """Split the staged images by their labels' content ranks and copy them, in order, into their splits.

    Each staging shard is deleted once copied, so the extra disk held is one shard.
    """
    splits = assign_splits([(image.label, digest) for image, digest in kept])
    distinct = Counter(label for label, _ in {(image.label, digest) for image, digest in kept})
    test = Counter(image.label for (image, _), split in zip(kept, splits, strict=True) if split == "test")
    check_test_split(test, distinct, folders=False)
    dest = staging.directory
    names = staging.close()
    (dest / f"{_STAGING}-labels.npy").unlink()
    row = 0
    for name in names:
        shard = np.load(dest / name, mmap_mode="r")
        for image in shard:
            writers[splits[row]].append(image, label_index[kept[row][0].label])
            row += 1
        del shard
        (dest / name).unlink()


def _decode_in_order(
    upload: Upload, decode: Callable[[SourceImage], _Decoded]
) -> Iterator[tuple[SourceImage, _Decoded]]:
    """Yield (image, decoded) in upload order while up to a few images per core decode at once."""
    workers = os.cpu_count() or 1
    pending: deque[tuple[SourceImage, Future[_Decoded]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="headstart-ingest") as pool:
        try:
            for image in upload.images:
                if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                    first, future = pending.popleft()
                    yield first, future.result()
                pending.append((image, pool.submit(decode, image)))
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def _check_every_label_kept(upload: Upload, bad: list[dict[str, str]]) -> None:
    skipped = {entry["file"] for entry in bad}
    kept = {image.label for image in upload.images if image.path not in skipped}
    empty = [label for label in upload.labels if label not in kept]
    if empty:
        raise Invalid(
            f"{len(empty)} label(s) have no usable image left after skipping bad files: {', '.join(empty)}",
            detail=empty,
        )
