"""The artifact store: model files, bodies, dataset shards and the feature cache, behind fsspec.

A local folder, or any fsspec object store (`s3://bucket/prefix`, `gs://...`, `az://...`) read
through a bounded local cache (kernels/store_remote.py). Every write is staged first and made
visible whole: in a folder, staged under `tmp/` and renamed into place; in an object store, uploaded
under its staging key and copied to the final key when the service claims it. Either way the
database row that points at an artifact is committed only after it is in place, and staging keys
that no commit claimed are swept (`sweep`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath

import fsspec
from fsspec.implementations.local import LocalFileSystem

from headstart.kernels.errors import Invalid
from headstart.kernels.store_remote import DEFAULT_CACHE_BYTES, RemoteObjects, StoreCache

LAYOUT = ("models", "bodies", "datasets", "features", "tmp")
# Keys never written again once they exist: datasets are permanent, and bodies and features are
# named by their content. A cached copy of one is used without asking the object store.
IMMUTABLE = ("bodies/", "datasets/", "features/")
# Where a process keeps its copies of an object store's keys, and how many bytes of them: a worker's
# environment says, since the cache belongs to the node it runs on (the service's Catalog traits set
# the service's own).
CACHE_ENV, CACHE_BYTES_ENV = "HEADSTART_STORE_CACHE", "HEADSTART_STORE_CACHE_BYTES"
# Object-store requests that run beside a job's own work (removing a killed attempt's output).
_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="headstart-store")


def default_cache(url: str) -> Path:
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "headstart" / "store"
    return Path(base) / hashlib.sha256(url.encode()).hexdigest()[:16]


def default_cache_bytes() -> int:
    return int(os.environ.get(CACHE_BYTES_ENV) or DEFAULT_CACHE_BYTES)


class ArtifactStore:
    """Artifacts laid out as DESIGN.md's "Storage" says: a local folder, or an object store.

    `root` is always a local folder in that layout: the store itself, or an object store's cache.
    """

    def __init__(self, url: str | Path, cache: Path | None = None, cache_bytes: int | None = None) -> None:
        self.url = str(url)
        try:
            fs, root = fsspec.core.url_to_fs(self.url)
        except ImportError as error:  # s3fs, gcsfs or adlfs is missing
            raise Invalid(f"the store {self.url!r} needs a package that is not installed: {error}") from None
        self.remote: RemoteObjects | None = None
        self.cache: StoreCache | None = None
        if isinstance(fs, LocalFileSystem):
            self.root = Path(root)
        else:
            self.remote = RemoteObjects(fs, root)
            self.root = Path(cache or default_cache(self.url))
            self.root.mkdir(parents=True, exist_ok=True)
            self.cache = StoreCache(self.root, default_cache_bytes() if cache_bytes is None else cache_bytes)
        for folder in LAYOUT:
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    @property
    def tmp(self) -> Path:
        """This process's local `tmp/`, for files in flight (request bodies, staged writes)."""
        return self.root / "tmp"

    def _local(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()) or not key or key.startswith("/"):
            raise Invalid(f"store key escapes the store: {key!r}")
        return target

    def path(self, key: str) -> Path:
        """The local path of a store key such as `models/3/v1/model.keras`, to read; from an object
        store, its objects are fetched into the cache first (only those the cache lacks)."""
        target = self._local(key)
        if self.remote is None or self.cache is None:
            return target
        return self.cache.fetch(self.remote, key, target, immutable=key.startswith(IMMUTABLE))

    def key_of(self, path: Path) -> str:
        """The store key of a local path inside the store (or its cache); Invalid for one outside."""
        target = Path(path).resolve()
        root = self.root.resolve()
        if not target.is_relative_to(root):
            raise Invalid(f"{path} is not in the artifact store")
        return target.relative_to(root).as_posix()

    def share(self, path: Path) -> str:
        """The key of a file or folder this process wrote at its key's local path (an upload under
        `tmp/`, computed features), put in the object store, if any, for other machines to read."""
        key = self.key_of(path)
        self._push(key)
        return key

    def upload(self, source: Path) -> Path:
        """Copy a local file, or a folder zipped on the way, into `tmp/` as an upload for a job.

        A job reads only the store, as a Dask worker on another machine would; the web service's
        uploads arrive in `tmp/` already. Either is `share`d when its job is submitted.
        """
        from headstart.kernels.engine.archive import zip_folder

        source = Path(source)
        target = self.tmp / f"upload-{uuid.uuid4().hex}{'.zip' if source.is_dir() else source.suffix}"
        try:
            if source.is_dir():
                zip_folder(source, target)
            else:
                shutil.copyfile(source, target)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def scratch(self, prefix: str) -> Path:
        """A new, empty local folder under `tmp/` for files a job reads; its owner removes it."""
        folder = self.tmp / f"{prefix}-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return folder

    def exists(self, key: str) -> bool:
        if self.remote is None or self.cache is None:
            return self._local(key).exists()
        if key.startswith(IMMUTABLE) and self.cache.holds(key, self._local(key)):
            return True
        return bool(self.remote.listing(key))

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local folder under `tmp/` for a write in flight; removed whatever happens."""
        folder = self.tmp / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def writing(self, key: str, folder: bool = True, retry: bool = True) -> Iterator[Path]:
        """A job's output under `key` (a staging key, or a training's candidate): a fresh local folder,
        or with `folder=False` a path to write one file at, that the block fills. When it ends well
        the output is the key's (uploaded, for an object store); when it fails, nothing is left of it,
        nor, with `retry`, of what a killed attempt left under the key. Keys are new for each job, so
        its first attempt (`retry=False`, from its reporter) has nothing to remove."""
        target = self._local(key)
        self._remove_local(target)
        # In an object store, what a killed attempt left is listed and removed while the block runs.
        leftovers = None if self.remote is None or not retry else _BACKGROUND.submit(self.remote.remove, key)
        if folder:
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield target
            if leftovers is not None:
                leftovers.result()
            self._push(key)
        except BaseException:
            if leftovers is not None:
                wait([leftovers])  # its own error, if any, is not the one to tell
            self._remove(key, target)
            raise

    def commit(self, staged: Path, key: str) -> Path:
        """Put a locally staged file or folder in place as `key`; an existing key is refused."""
        if self.exists(key):
            raise Invalid(f"artifact already exists: {key}")
        return self._place(staged, key)

    def replace(self, key: str, data: bytes) -> None:
        """Write `data` as `key`, replacing what was there: for documents derived from the catalog
        (model cards), written again when it changes. A reader sees the old bytes or the new ones,
        whole; nothing passes through `tmp/`."""
        target = self._local(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            partial.write_bytes(data)
            if self.remote is not None and self.cache is not None:
                self.remote.upload(partial, key)
                os.replace(partial, target)
                self.cache.keep(key, self.remote.listing(key))
            else:
                os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def commit_if_absent(self, staged: Path, key: str) -> Path:
        """Like commit, for content-addressed keys: a concurrent writer of the same content wins."""
        if not self.exists(key):
            with contextlib.suppress(FileExistsError, OSError):
                self._place(staged, key)
        return self._local(key)

    def claim(self, staged: str, key: str, exists_ok: bool = False) -> bool:
        """Move a job's output (the key it was written at) to its final key; an existing key is
        refused, or with `exists_ok` kept, the output deleted and False returned."""
        if self.exists(key):
            if not exists_ok:
                raise Invalid(f"artifact already exists: {key}")
            self.delete(staged)
            return False
        if self.remote is None or self.cache is None:
            self._place(self._local(staged), key)
            return True
        objects = self.remote.listing(staged)
        if not objects:
            raise Invalid(f"nothing was staged at {staged}")
        self.remote.copy(staged, key, objects)
        local = self._local(staged)
        if local.exists():  # written here: this process's cache keeps it under its new key
            target = self._local(key)
            self.cache.forget(key, target)  # a stale copy of a key deleted meanwhile
            target.parent.mkdir(parents=True, exist_ok=True)
            local.rename(target)
            self.cache.keep(key, self.remote.listing(key))
        self.delete(staged)
        return True

    @contextlib.contextmanager
    def placing(self) -> Iterator[list[str]]:
        """Collects keys committed inside a database transaction, and removes them if it fails.

        Use as `with store.placing() as placed, transaction(engine) as session:` so that the
        database commit runs first on exit, and a failed commit takes the placed artifacts away.
        """
        placed: list[str] = []
        try:
            yield placed
        except BaseException:
            for key in placed:
                self.delete(key)
            raise

    def delete(self, key: str) -> None:
        """Remove a key, file or folder; a missing key is not an error (deletes are idempotent)."""
        target = self._local(key)
        self._remove(key, target)
        # Folders it leaves empty go too, below the resource's own (`models/3/candidates/` after its
        # last candidate, never `models/3/`).
        keep = self.root.resolve() / PurePosixPath(key).parts[0]
        for parent in target.parents:
            if len(parent.relative_to(keep).parts) < 2:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def size(self, key: str) -> int:
        """The size of a stored file, in bytes."""
        if self.remote is None:
            return self._local(key).stat().st_size
        objects = self.remote.listing(key)
        if "" not in objects:
            raise FileNotFoundError(key)
        return objects[""].size

    def sweep(self, older_than: float) -> list[str]:
        """Delete what `tmp/` holds that is older than `older_than` seconds: staged writes and uploads
        that no commit claimed (a crashed job's, a lost request's). The keys it deleted."""
        before = time.time() - older_than
        swept = []
        for entry in sorted(self.tmp.iterdir()):
            with contextlib.suppress(OSError):
                if max((p.stat().st_mtime for p in [entry, *entry.rglob("*")]), default=0) < before:
                    swept.append(self.key_of(entry))
        if self.remote is not None:
            swept = sorted(set(swept) | set(self.remote.stale("tmp", before)))
        for key in swept:
            self._remove(key, self._local(key))
        return swept

    # --- the two kinds of store --------------------------------------------------------------

    def _place(self, staged: Path, key: str) -> Path:
        target = self._local(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.remote is not None and self.cache is not None:
            self.remote.upload(staged, key)
            if target.exists():  # a stale copy of a key deleted meanwhile
                self.cache.forget(key, target)
            staged.rename(target)
            self.cache.keep(key, self.remote.listing(key))
            return target
        if target.exists():
            raise FileExistsError(key)
        staged.rename(target)
        return target

    def _push(self, key: str) -> None:
        """Upload what this process wrote at `key`'s local path (nothing to do in a local store)."""
        if self.remote is None or self.cache is None:
            return
        # Recorded with the local sizes and no tag, which saves listing the key again: the keys
        # pushed are immutable ones (whose copies are never compared by tag) and job outputs that
        # this process does not read again; one that it does is fetched once more.
        self.cache.keep(key, self.remote.upload(self._local(key), key))

    def _remove(self, key: str, target: Path) -> None:
        if self.remote is not None and self.cache is not None:
            self.remote.remove(key)
            self.cache.forget(key, target)
            return
        self._remove_local(target)

    def _remove_local(self, target: Path) -> None:
        if self.cache is not None:
            if target.exists():  # a key this cache never held has no records to scan for
                self.cache.forget(self.key_of(target), target)
            return
        if target.is_dir():
            # Rename first so that a crash mid-delete never leaves a half-deleted artifact in place.
            doomed = self.tmp / f"deleting-{uuid.uuid4().hex}"
            target.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink()


def dataset_key(dataset_id: int) -> str:
    return f"datasets/{dataset_id}"


def version_key(model_id: int, version: int) -> str:
    return f"models/{model_id}/v{version}"


def export_key(model_id: int, version: int, format: str) -> str:
    """A version's export in a format of TensorFlow's, kept beside it (and deleted with it)."""
    return f"{version_key(model_id, version)}/exports/{format}.zip"


def candidate_key(model_id: int, training_id: int) -> str:
    return f"models/{model_id}/candidates/t{training_id}"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read a MiB at a time."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def body_key(body_sha: str) -> str:
    return f"bodies/{body_sha}.keras"


def body_facts_key(body_sha: str) -> str:
    """A shared body's parameter count and file size, kept beside it: they never change for a sha."""
    return f"bodies/{body_sha}.json"
