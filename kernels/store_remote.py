"""An object store behind fsspec (S3, GCS, Azure, ...), and the bounded local cache it is read through.

A store key is an object, or, for a folder key such as `datasets/4`, every object under `key/`. A
process reads a key through its cache: one listing of the key tells which of the local copies are
still the store's (same size and ETag), and only the others are downloaded, so a shard or a feature
file read before costs one metadata request and is memory-mapped from local disk. Object stores
have no rename, so the store writes a job's output under its staging key and copies it to the final
key when the service claims it (kernels/store.py).

Two workers on one node may share a cache folder: a key is fetched under a lock of its own, the
cache's records change under one lock, and files are renamed into place, so a reader that has one
memory-mapped keeps its bytes even when the cache evicts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# A cache that holds a few datasets' shards and their features on a worker's local disk.
DEFAULT_CACHE_BYTES = 20 * 2**30

# The bytes this process has moved from and to object stores (bench/ prints them per training).
TRANSFERRED = {"downloaded": 0, "uploaded": 0}
_counting = threading.Lock()


def _count(direction: str, size: int) -> None:
    with _counting:
        TRANSFERRED[direction] += size


@dataclass(frozen=True)
class Stored:
    """One object as the store lists it: its size, and a tag that changes when its bytes do."""

    size: int
    tag: str


TAGS = ("ETag", "etag", "md5Hash", "generation", "LastModified", "last_modified", "mtime", "created")


def _tag(info: dict[str, Any]) -> str:
    # S3 and Azure list an ETag, GCS an md5 or a generation; any file system lists some modification
    # time. Keys are written once, so a changed tag means the key was deleted and written again.
    for name in TAGS:
        if info.get(name) is not None:
            value = info[name]
            return value.isoformat() if isinstance(value, datetime) else str(value)
    return ""


def _modified(info: dict[str, Any]) -> float | None:
    for name in ("LastModified", "last_modified", "mtime", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


class RemoteObjects:
    """The objects under one prefix of an fsspec file system, addressed by store keys."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def remote(self, key: str, relative: str = "") -> str:
        return "/".join(part for part in (self.root, key, relative) if part)

    def listing(self, key: str) -> dict[str, Stored]:
        """The objects of a key: {"": ...} for an object, {relative path: ...} for a folder key."""
        path = self.remote(key)
        self.fs.invalidate_cache()  # other processes write the store too
        try:
            found = self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        objects: dict[str, Stored] = {}
        for name, info in found.items():
            name = name.rstrip("/")
            if info.get("type") == "directory":
                continue
            if name == path:
                relative = ""
            elif name.startswith(path + "/"):
                relative = name[len(path) + 1 :]
            else:
                continue  # `models/10/...` when listing `models/1`
            objects[relative] = Stored(int(info.get("size") or 0), _tag(info))
        return objects

    def download(self, key: str, relative: str, target: Path) -> None:
        self.fs.get_file(self.remote(key, relative), str(target))
        _count("downloaded", target.stat().st_size)

    def upload(self, source: Path, key: str) -> dict[str, Stored]:
        """Put a local file, or every file of a local folder, under `key`; the objects it put, with
        their sizes and no tag (the store gives the tags only when listed)."""
        files = [source] if not source.is_dir() else sorted(p for p in source.rglob("*") if p.is_file())
        put = {
            "" if f == source else f.relative_to(source).as_posix(): Stored(f.stat().st_size, "")
            for f in files
        }
        if files:
            # Lists, so that an async file system (s3fs, gcsfs, adlfs) sends them side by side.
            self.fs.put([str(file) for file in files], [self.remote(key, relative) for relative in put])
        _count("uploaded", sum(stored.size for stored in put.values()))
        return put

    def copy(self, source: str, key: str, objects: dict[str, Stored]) -> None:
        """Copy a key's objects to another key, inside the store (a server-side copy on S3)."""
        if objects:
            sources = [self.remote(source, relative) for relative in objects]
            self.fs.copy(sources, [self.remote(key, relative) for relative in objects])

    def remove(self, key: str, objects: dict[str, Stored] | None = None) -> None:
        objects = self.listing(key) if objects is None else objects
        if objects:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm([self.remote(key, relative) for relative in objects])

    def stale(self, folder: str, before: float) -> list[str]:
        """The keys directly under `folder` whose newest object was written before `before`."""
        prefix = self.remote(folder)
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return []
        newest: dict[str, float] = {}
        for name, info in found.items():
            if not name.startswith(prefix + "/") or info.get("type") == "directory":
                continue
            child = name[len(prefix) + 1 :].split("/", 1)[0]
            modified = _modified(info)
            newest[child] = max(newest.get(child, 0.0), modified if modified is not None else time.time())
        return [f"{folder}/{child}" for child, modified in sorted(newest.items()) if modified < before]


class StoreCache:
    """Local copies of a remote store's keys, laid out as the store is, at most `max_bytes` of them.

    Each key read or written through it has a record (its objects' sizes and tags) under
    `.cache/records/`; a record's modification time is when the key was last used, and the least
    recently used keys are evicted first.
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.records = root / ".cache" / "records"
        self.locks = root / ".cache" / "locks"
        self.records.mkdir(parents=True, exist_ok=True)
        self.locks.mkdir(parents=True, exist_ok=True)

    def _name(self, key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        with (self.locks / f"{name}.lock").open("a") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def _record(self, key: str) -> dict[str, Stored]:
        return _objects_of(self.records / f"{self._name(key)}.json")

    def _write_record(self, key: str, objects: dict[str, Stored]) -> None:
        record = self.records / f"{self._name(key)}.json"
        partial = record.with_name(f".{uuid.uuid4().hex}.json")
        payload = {"key": key, "objects": {r: [o.size, o.tag] for r, o in objects.items()}}
        partial.write_text(json.dumps(payload))
        os.replace(partial, record)

    def holds(self, key: str, target: Path) -> bool:
        """Whether the cache has a whole copy of `key` (all its recorded objects are there)."""
        held = self._record(key)
        return bool(held) and all((target / r if r else target).is_file() for r in held)

    def fetch(self, remote: RemoteObjects, key: str, target: Path, *, immutable: bool = False) -> Path:
        """The local copy of `key` at `target`, brought up to date with the store. An `immutable` key
        (one never written again once it exists) that the cache holds whole is not even listed."""
        if immutable and self.holds(key, target):
            with contextlib.suppress(OSError):
                os.utime(self.records / f"{self._name(key)}.json")  # used now: evicted last
            return target
        objects = remote.listing(key)
        with self._lock(self._name(key)):
            if not objects:
                if self._record(key):  # deleted from the store since it was cached
                    self.forget(key, target)
                return target
            held = self._record(key)
            downloaded = False
            for relative, stored in objects.items():
                local = target / relative if relative else target
                if held.get(relative) == stored and local.is_file():
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                partial = self.root / "tmp" / f"fetch-{uuid.uuid4().hex}"
                partial.parent.mkdir(parents=True, exist_ok=True)
                try:
                    remote.download(key, relative, partial)
                    downloaded = True
                    os.replace(partial, local)
                finally:
                    partial.unlink(missing_ok=True)
            for relative in set(held) - set(objects):  # gone from the store's copy of the key
                (target / relative if relative else target).unlink(missing_ok=True)
            with self._lock("records"):
                self._write_record(key, objects)
        if downloaded:  # only new bytes can take the cache over its size
            self.evict(keep=key)
        return target

    def keep(self, key: str, objects: dict[str, Stored]) -> None:
        """Record a key whose local copy this process wrote and uploaded: no download needed."""
        with self._lock("records"):
            self._write_record(key, objects)
        self.evict(keep=key)

    def forget(self, key: str, target: Path) -> None:
        """Remove a key's local copy and the records of it and of keys under it."""
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        with self._lock("records"):
            for record in self.records.glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    held = json.loads(record.read_text())["key"]
                    if held == key or held.startswith(key + "/"):
                        record.unlink(missing_ok=True)

    def size(self) -> int:
        """The bytes of the keys the cache holds."""
        return sum(o.size for record in self.records.glob("*.json") for o in _objects_of(record).values())

    def evict(self, keep: str | None = None) -> None:
        """Remove the least recently used keys until the cache is within its size."""
        with self._lock("records"):
            records = []
            for record in self.records.glob("*.json"):
                try:
                    raw = json.loads(record.read_text())
                    used = record.stat().st_mtime
                except (OSError, ValueError):
                    continue
                size = sum(int(entry[0]) for entry in raw.get("objects", {}).values())
                records.append((used, raw["key"], size, record))
            total = sum(size for _, _, size, _ in records)
            for _, key, size, record in sorted(records):
                if total <= self.max_bytes:
                    break
                if key == keep:
                    continue
                target = self.root / key
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
                record.unlink(missing_ok=True)
                total -= size


def _objects_of(record: Path) -> dict[str, Stored]:
    try:
        objects = json.loads(record.read_text())["objects"]
        return {relative: Stored(*entry) for relative, entry in objects.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
