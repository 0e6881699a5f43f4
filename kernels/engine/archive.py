"""Enumerate the labelled images of a dataset upload (a .zip file or a folder) without extracting it.

Every rule that protects the platform (traversal, links, size and count bombs) is checked for the
whole upload before a single image is read.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import get_args

from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.errors import Invalid, TooLarge
from headstart.kernels.schemas import Split

# The split folders an upload may hold: train, val and test.
SPLITS: tuple[str, ...] = get_args(Split)
_IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_SHOWN = 20  # how many offending entries a message names before "and N more"


@dataclass(frozen=True)
class SourceImage:
    """One image of an upload: its path inside the upload, its label and its split folder, if any."""

    path: str
    label: str
    split: str | None


class Upload:
    """An opened, checked upload: its images in path order and `read()` for each one's bytes.

    Reading is safe from several threads at once (zipfile serialises its seeks internally).
    """

    def __init__(self, source: Path, limits: IngestLimits) -> None:
        source = Path(source)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._root = source
        if source.is_dir():
            files = _scan_folder(source, limits)
        elif source.is_file():
            self._zip, self._members = _open_zip(source, limits)
            files = list(self._members)
        else:
            raise Invalid(f"upload not found: {source}")
        try:
            self.images: list[SourceImage] = _layout(files)
        except BaseException:
            self.close()
            raise
        self.labels: list[str] = sorted({image.label for image in self.images})
        self.has_split_folders: bool = any(image.split is not None for image in self.images)

    def read(self, image: SourceImage) -> bytes:
        """The file's bytes. A damaged zip entry raises `Invalid` naming the reason."""
        if self._zip is None:
            return (self._root / image.path).read_bytes()
        try:
            return self._zip.read(self._members[image.path])
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as error:
            # RuntimeError: encrypted entry; NotImplementedError: unsupported compression method.
            raise Invalid(f"cannot read zip entry: {error}") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_upload(source: Path, limits: IngestLimits) -> Upload:
    """Open and check an upload; use it as a context manager so a zip file is closed."""
    return Upload(source, limits)


def list_images(source: Path, limits: IngestLimits) -> list[SourceImage]:
    """The checked list of images of an upload, in path order."""
    with open_upload(source, limits) as upload:
        return upload.images


def _open_zip(source: Path, limits: IngestLimits) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    size = source.stat().st_size
    if size > limits.max_archive_bytes:
        raise TooLarge(f"archive is {size:,} bytes, over the limit of {limits.max_archive_bytes:,}")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise Invalid(f"not a readable zip file: {error}") from None
    try:
        return archive, _check_zip_entries(archive.infolist(), limits)
    except BaseException:
        archive.close()
        raise


def _check_zip_entries(entries: list[zipfile.ZipInfo], limits: IngestLimits) -> dict[str, zipfile.ZipInfo]:
    if len(entries) > limits.max_files:
        raise TooLarge(f"archive holds {len(entries):,} entries, over the limit of {limits.max_files:,}")
    members: dict[str, zipfile.ZipInfo] = {}
    packed = unpacked = 0
    for entry in entries:
        # Windows tools may write backslashes; a "..\\" must not slip past the traversal check.
        name = entry.filename.replace("\\", "/")
        _check_relative(name)
        name = "/".join(part for part in name.split("/") if part not in ("", "."))
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise Invalid(f"archive entry {entry.filename!r} is a symbolic link; links are not allowed")
        if entry.is_dir():
            continue
        if entry.file_size > limits.max_image_bytes:
            raise TooLarge(
                f"archive entry {entry.filename!r} is {entry.file_size:,} bytes, "
                f"over the per-file limit of {limits.max_image_bytes:,}"
            )
        packed += entry.compress_size
        unpacked += entry.file_size
        if _is_ignored(name):
            continue
        if name in members:
            raise Invalid(f"archive holds {name!r} twice")
        members[name] = entry
    ratio = unpacked / max(packed, 1)
    if ratio > limits.max_compression_ratio:
        raise TooLarge(
            f"archive expands {ratio:,.0f}x ({unpacked:,} bytes from {packed:,}), "
            f"over the compression ratio limit of {limits.max_compression_ratio:,.0f}x"
        )
    return members


def _check_relative(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise Invalid(f"archive entry {name!r} has an absolute path")
    if ".." in parts:
        raise Invalid(f"archive entry {name!r} points outside the archive ('..')")


def _scan_folder(root: Path, limits: IngestLimits) -> list[str]:
    files: list[str] = []
    total = 0
    for path, entry in _walk(root):
        if entry.is_symlink():
            raise Invalid(f"{path!r} is a symbolic link; links are not allowed")
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise Invalid(f"{path!r} is not a regular file")
        if info.st_size > limits.max_image_bytes:
            raise TooLarge(
                f"{path!r} is {info.st_size:,} bytes, over the per-file limit of {limits.max_image_bytes:,}"
            )
        total += info.st_size
        if total > limits.max_archive_bytes:
            raise TooLarge(f"upload is over {limits.max_archive_bytes:,} bytes, the size limit")
        files.append(path)
        if len(files) > limits.max_files:
            raise TooLarge(f"upload holds more than {limits.max_files:,} files, the limit")
    return files


def _walk(root: Path, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Yield (relative path, entry) for every non-directory below root, never following links."""
    with os.scandir(root / prefix if prefix else root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = f"{prefix}{entry.name}"
            if _is_hidden(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(root, f"{path}/")
            else:
                yield path, entry


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_NAMES


def _is_ignored(name: str) -> bool:
    return any(_is_hidden(part) for part in name.split("/"))


def _layout(files: list[str]) -> list[SourceImage]:
    """Map file paths to labels and splits: `label/image` or `split/label/image`, under one optional
    wrapper folder."""
    paths = sorted(files)
    parts = [PurePosixPath(path).parts for path in paths]
    depth = 0
    # Strip wrapper folders: every file under the same top folder, which is not a split, and deep
    # enough that a label folder remains below it.
    while parts and all(len(p) >= depth + 3 and p[depth] == parts[0][depth] for p in parts):
        if parts[0][depth].lower() in SPLITS:
            break
        depth += 1

    loose = [path for path, p in zip(paths, parts, strict=True) if len(p) - depth < 2]
    if loose:
        raise Invalid(
            f"{len(loose)} file(s) lie outside label folders, such as {loose[0]!r}; "
            "put each image in a folder named after its label",
            detail=loose,
        )
    tops = sorted({p[depth] for p in parts})
    split_tops = [top for top in tops if top.lower() in SPLITS]
    if split_tops and len(split_tops) != len(tops):
        others = [top for top in tops if top.lower() not in SPLITS]
        raise Invalid(
            f"the upload mixes split folders ({', '.join(split_tops)}) with label folders "
            f"({_some(others)}); use either label/image or train|val|test/label/image",
            detail={"splits": split_tops, "labels": others},
        )

    images: list[SourceImage] = []
    if split_tops:
        shallow = [path for path, p in zip(paths, parts, strict=True) if len(p) - depth < 3]
        if shallow:
            raise Invalid(
                f"{len(shallow)} file(s) lie directly in a split folder, such as {shallow[0]!r}; "
                "use train|val|test/label/image",
                detail=shallow,
            )
        for path, p in zip(paths, parts, strict=True):
            images.append(SourceImage(path=path, label=p[depth + 1], split=p[depth].lower()))
    else:
        for path, p in zip(paths, parts, strict=True):
            images.append(SourceImage(path=path, label=p[depth], split=None))

    labels = sorted({image.label for image in images})
    if len(labels) < 2:
        found = f"only {labels[0]!r}" if labels else "none"
        raise Invalid(f"a dataset needs at least 2 label folders with images; found {found}", detail=labels)
    return images


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN} more"


def zip_folder(folder: Path, dest: Path) -> None:
    """Write a folder's files into a zip at `dest`, named by their paths relative to the folder
    (`label/image` or `split/label/image`), file by file from disk to disk."""
    # The ingest's own walk: sorted, hidden files and OS litter skipped, links not followed.
    # Stored, not deflated: images are compressed already, and deflating them costs CPU for nothing.
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED, allowZip64=True, strict_timestamps=False) as archive:
        for relative, entry in _walk(folder):
            if entry.is_symlink():
                raise Invalid(f"{relative!r} is a symbolic link; links are not allowed")
            if not entry.is_file(follow_symlinks=False):
                raise Invalid(f"{relative!r} is not a regular file")
            archive.write(entry.path, relative)
