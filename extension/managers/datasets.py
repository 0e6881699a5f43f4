"""Datasets: ingest an upload into shards as a job, list and show them. Datasets are public and permanent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Dataset, Job, User
from headstart.extension.managers.jobs import Watcher, new_key, progress_of, staging_key
from headstart.kernels.engine.archive import list_images
from headstart.kernels.engine.images import validate_policy
from headstart.kernels.errors import Conflict, Invalid, NotFound
from headstart.kernels.schemas import DatasetPublic, JobPublic
from headstart.kernels.store import dataset_key
from headstart.kernels.tasks.ingest import IngestInput, IngestResult, ingest_dataset

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
    """Ingests, lists and shows datasets."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def submit(
        self,
        user: User,
        upload: Path,
        *,
        name: str,
        description: str = "",
        skip_invalid: bool = False,
        resize_policy: str | None = None,
        watch: Watcher | None = None,
    ) -> JobPublic:
        """Queue the ingest of an upload that is in the store's `tmp/` (the job removes it at its end).

        Refused before anything is queued: a missing name, an unknown resize policy, a name taken.
        """
        name = check_name(name, "dataset")
        policy = resize_policy or self.catalog.default_resize_policy
        validate_policy(policy)
        with transaction(self.catalog.engine) as session:
            if session.exec(select(Dataset).where(Dataset.name == name)).first() is not None:
                raise Conflict(f"a dataset named {name!r} already exists")
        store = self.catalog.store
        key = new_key("ingest")
        given = IngestInput(
            store_url=store.url,
            source=store.share(upload),
            staging=staging_key(key),
            skip_invalid=skip_invalid,
            resize_policy=policy,
            limits=self.catalog.ingest_limits,
        )
        request = {
            "name": name,
            "description": description,
            "staged": [given.staging],
            "uploads": [given.source],
        }
        return self.catalog.jobs.submit(
            user, "ingest", ingest_dataset, given, key=key, request=request, watch=watch
        )

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
        """Ingest a zip or a folder and wait for it: the command line's way. Nothing is stored unless
        every step succeeds. `progress(done, total)` follows the images decoded."""
        source = Path(source)
        if not source.exists():
            raise Invalid(f"no such file or folder: {source}")
        # The upload's own checks (its size, its files' count, names and links) run on the user's
        # file or folder before anything is copied into the store.
        list_images(source, self.catalog.ingest_limits)
        upload = self.catalog.store.upload(source)
        try:
            job = self.submit(
                user,
                upload,
                name=name,
                description=description,
                skip_invalid=skip_invalid,
                resize_policy=resize_policy,
                watch=progress_of("ingest", progress),
            )
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        made = self.catalog.jobs.wait(job.id)
        made.result()
        return self.get(made.job.result["dataset_id"])  # type: ignore[index]

    def record(self, session: Session, job: Job, result: IngestResult, placed: list[str]) -> dict:
        """An ingest's end: the dataset's row, and its staged shards moved under its id."""
        request = job.request or {}
        name = request["name"]
        if session.exec(select(Dataset).where(Dataset.name == name)).first() is not None:
            raise Conflict(f"a dataset named {name!r} already exists")
        dataset = Dataset(
            name=name,
            description=request.get("description", ""),
            labels=result.labels,
            counts=result.counts,
            resize_policy=result.resize_policy,
            split_policy=result.split_policy,
            skipped=result.skipped,
            created_by_id=job.owner_id,
        )
        session.add(dataset)
        session.flush()
        key = dataset_key(dataset.id)  # type: ignore[arg-type]
        self.catalog.store.claim(request["staged"][0], key)
        placed.append(key)
        return {"dataset_id": dataset.id}

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
