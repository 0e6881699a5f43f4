"""Turn a dataset upload into uint8 shards and a manifest: decode and resize every image once.

Images decode in a thread pool (Pillow releases the GIL) with a bounded number in flight, and are
written in upload order, so the same upload always gives the same shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
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
from headstart.kernels.errors import HeadstartError, Invalid

__all__ = ["IngestResult", "content_split", "ingest", "validate_policy"]

# Per-mille thresholds of the content hash: 80% train, 10% val, 10% test.
_SPLIT_BOUNDS = ((800, "train"), (900, "val"), (1000, "test"))
_IN_FLIGHT_PER_WORKER = 4


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
    split: str
    reason: str | None


def content_split(data: bytes) -> str:
    """The split an image belongs to when the upload has no split folders, fixed by its content."""
    bucket = int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % 1000
    return next(split for bound, split in _SPLIT_BOUNDS if bucket < bound)


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
    them, unless `skip_invalid`, which records them in the manifest instead. The manifest is written
    last, so a dest without one is never a dataset.
    """
    validate_policy(resize_policy)
    dest = Path(dest)
    if not dest.is_dir():
        raise Invalid(f"ingest destination {dest} is not a folder")
    if any(dest.iterdir()):
        raise Invalid(f"ingest destination {dest} is not empty")

    with open_upload(source, limits) as upload:
        label_index = {label: index for index, label in enumerate(upload.labels)}
        writers = {split: ShardWriter(dest, split) for split in SPLITS}
        bad: list[dict[str, str]] = []
        total = len(upload.images)

        def decode(image: SourceImage) -> _Decoded:
            try:
                data = upload.read(image)
                split = image.split or content_split(data)
                array = decode_image(data, max_pixels=limits.max_image_pixels, policy=resize_policy)
            except HeadstartError as error:
                return _Decoded(None, image.split or "", error.message)
            return _Decoded(array, split, None)

        for done, (image, result) in enumerate(_decode_in_order(upload, decode), start=1):
            if result.image is None:
                bad.append({"file": image.path, "reason": result.reason or "unreadable"})
            elif skip_invalid or not bad:
                # Once a file is bad and not skippable, the ingest will fail: keep decoding only to
                # list every bad file, and stop writing.
                writers[result.split].append(result.image, label_index[image.label])
            if progress is not None:
                progress(done, total)

        if bad and not skip_invalid:
            raise Invalid(
                f"{len(bad)} of {total} files are not usable images, such as {bad[0]['file']!r} "
                f"({bad[0]['reason']})",
                detail=bad,
            )
        _check_every_label_kept(upload, bad)
        shards = {split: writer.close() for split, writer in writers.items()}

        manifest: dict[str, Any] = {
            "format": FORMAT,
            "labels": upload.labels,
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "resize_policy": resize_policy,
            "split_policy": "folders" if upload.has_split_folders else "content-hash",
            "splits": {split: {"count": len(writers[split]), "shards": shards[split]} for split in SPLITS},
            "skipped": bad,
            "source_files": total,
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
