"""Datasets: ingest an upload into shards, list and show them. Datasets are public and permanent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Dataset, User
from headstart.extension.jobs.artifacts import ingest_dataset
from headstart.extension.store import dataset_key
from headstart.kernels.errors import Conflict, Invalid, NotFound
from headstart.kernels.schemas import DatasetPublic

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog


def _public(dataset: Dataset, creator: str) -> DatasetPublic:
    return DatasetPublic(**dataset.model_dump(), created_by=creator)


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise Invalid(f"a {what} needs a name")
    if len(name) > 255:
        raise Invalid(f"a {what} name is at most 255 characters, not {len(name)}")
    return name


class DatasetManager:
    """Adds, lists and shows datasets."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def add(
        self,
        user: User,
        source: Path,
        *,
        name: str,
        description: str = "",
        skip_invalid: bool = False,
        resize_policy: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DatasetPublic:
        """Ingest a zip or folder. Nothing is stored unless every step succeeds."""
        name = check_name(name, "dataset")
        source = Path(source)
        if not source.exists():
            raise Invalid(f"no such file or folder: {source}")
        with transaction(self.catalog.engine) as session:
            if session.exec(select(Dataset).where(Dataset.name == name)).first() is not None:
                raise Conflict(f"a dataset named {name!r} already exists")
        store = self.catalog.store
        with store.staging() as folder:
            staged = folder / "dataset"
            staged.mkdir()
            result = self.catalog.jobs.execute(
                user,
                "ingest",
                ingest_dataset,
                source,
                staged,
                self.catalog.ingest_limits,
                skip_invalid=skip_invalid,
                resize_policy=resize_policy or self.catalog.default_resize_policy,
                phase="ingest",
                on_progress=progress,
            )
            manifest = result.manifest
            with store.placing() as placed, transaction(self.catalog.engine) as session:
                dataset = Dataset(
                    name=name,
                    description=description,
                    labels=list(manifest["labels"]),
                    counts={split: info["count"] for split, info in manifest["splits"].items()},
                    resize_policy=manifest["resize_policy"],
                    split_policy=manifest["split_policy"],
                    skipped=list(manifest["skipped"]),
                    created_by_id=user.id,  # type: ignore[arg-type]
                )
                session.add(dataset)
                session.flush()
                key = dataset_key(dataset.id)  # type: ignore[arg-type]
                store.commit(staged, key)
                placed.append(key)
            return _public(dataset, user.name)

    def list(self) -> list[DatasetPublic]:
        with transaction(self.catalog.engine) as session:
            rows = session.exec(select(Dataset, User.name).join(User).order_by(col(Dataset.id))).all()
            return [_public(dataset, creator) for dataset, creator in rows]

    def get(self, ref: int | str) -> DatasetPublic:
        """A dataset by id or by name."""
        with transaction(self.catalog.engine) as session:
            return self._public(session, self.row(session, ref))

    def _public(self, session: object, dataset: Dataset) -> DatasetPublic:
        creator = session.get(User, dataset.created_by_id)  # type: ignore[attr-defined]
        return _public(dataset, creator.name)

    @staticmethod
    def row(session: object, ref: int | str) -> Dataset:
        if isinstance(ref, int) or str(ref).isdigit():
            dataset = session.get(Dataset, int(ref))  # type: ignore[attr-defined]
        else:
            dataset = session.exec(select(Dataset).where(Dataset.name == ref)).first()  # type: ignore[attr-defined]
        if dataset is None:
            raise NotFound(f"dataset {ref} not found")
        return dataset

    def delete(self, user: User, ref: int | str) -> None:
        """Refused: leaderboards and trainings point at datasets, so they are never deleted."""
        self.get(ref)
        raise Conflict(f"dataset {ref} cannot be deleted: datasets are permanent, so results stay comparable")
