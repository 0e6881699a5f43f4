"""The artifact store: model files, bodies, dataset shards and the feature cache, behind fsspec.

Every write goes to `tmp/` under a fresh name and is renamed into place, so a reader never sees a
half-written artifact; the database row that points at it is committed only after the rename.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

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

    def size(self, key: str) -> int:
        """The size of a stored file, in bytes."""
        return self.path(key).stat().st_size


def dataset_key(dataset_id: int) -> str:
    return f"datasets/{dataset_id}"


def version_key(model_id: int, version: int) -> str:
    return f"models/{model_id}/v{version}"


def candidate_key(model_id: int, training_id: int) -> str:
    return f"models/{model_id}/candidates/t{training_id}"


def body_key(body_sha: str) -> str:
    return f"bodies/{body_sha}.keras"
