"""The artifact store: model files, bodies, dataset shards and the feature cache, behind fsspec.

Every write goes to `tmp/` under a fresh name and is renamed into place, so a reader never sees a
half-written artifact; the database row that points at it is committed only after the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import fsspec
from fsspec.implementations.local import LocalFileSystem

from headstart.kernels.errors import Invalid


class ArtifactStore:
    """A folder of artifacts laid out as DESIGN.md's "Storage" says, local by default."""

    def __init__(self, url: str | Path) -> None:
        fs, root = fsspec.core.url_to_fs(str(url))
        if not isinstance(fs, LocalFileSystem):
            # Workers memory-map shards and features; remote stores need a local cache layer first.
            raise Invalid(f"only local artifact stores are supported so far, not {url!r}")
        self.url = str(url)
        self.root = Path(root)
        for folder in ("models", "bodies", "datasets", "features", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The local path of a store key such as `models/3/v1/model.keras`."""
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise Invalid(f"store key escapes the store: {key!r}")
        return target

    def key_of(self, path: Path) -> str:
        """The store key of a path inside the store; Invalid for a path outside it."""
        target = Path(path).resolve()
        root = self.root.resolve()
        if not target.is_relative_to(root):
            raise Invalid(f"{path} is not in the artifact store")
        return target.relative_to(root).as_posix()

    def upload(self, source: Path) -> Path:
        """Copy a local file, or a folder zipped on the way, into `tmp/` as an upload for a job.

        A job reads only the store, as a Dask worker on another machine would; the web service's
        uploads arrive in `tmp/` already.
        """
        from headstart.kernels.engine.archive import zip_folder

        source = Path(source)
        target = (
            self.root / "tmp" / f"upload-{uuid.uuid4().hex}{'.zip' if source.is_dir() else source.suffix}"
        )
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
        """A new, empty folder under `tmp/` for files a job reads; its owner removes it."""
        folder = self.root / "tmp" / f"{prefix}-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        return folder

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder under `tmp/` for a write in flight; removed whatever happens."""
        folder = self.root / "tmp" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, key: str) -> Path:
        """Rename a staged file or folder into place atomically; an existing target is refused."""
        target = self.path(key)
        if target.exists():
            raise Invalid(f"artifact already exists: {key}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
        return target

    @contextlib.contextmanager
    def placing(self) -> Iterator[list[str]]:
        """Collects keys committed inside a database transaction, and removes them if it fails.

        Use as `with store.placing() as placed, transaction(engine) as session:` so that the
        database commit runs first on exit, and a failed commit takes the renamed artifacts away.
        """
        placed: list[str] = []
        try:
            yield placed
        except BaseException:
            for key in placed:
                self.delete(key)
            raise

    def commit_if_absent(self, staged: Path, key: str) -> Path:
        """Like commit, for content-addressed keys: a concurrent writer of the same content wins."""
        target = self.path(key)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError, OSError):
                staged.rename(target)
        return target

    def delete(self, key: str) -> None:
        """Remove a key, file or folder; a missing key is not an error (deletes are idempotent)."""
        target = self.path(key)
        if target.is_dir():
            # Rename first so that a crash mid-delete never leaves a half-deleted artifact in place.
            doomed = self.root / "tmp" / f"deleting-{uuid.uuid4().hex}"
            target.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        elif target.exists():
            target.unlink()
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
        return self.path(key).stat().st_size


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
