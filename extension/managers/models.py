"""Models: create from the zoo, upload, list, show, download (and export), change and delete (rules 1,
5, 6, 8)."""

from __future__ import annotations

import builtins
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import (
    CatalogModel,
    Job,
    ModelVersion,
    Training,
    User,
    label_key,
    now,
)
from headstart.extension.managers.datasets import check_name
from headstart.extension.managers.jobs import job_public, new_key, staging_key
from headstart.extension.managers.model_index import Filter, ModelIndex
from headstart.kernels.engine.limits import check_model_limits
from headstart.kernels.engine.zoo import check_request
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import (
    UNFINISHED,
    ExportFormat,
    JobPublic,
    ModelPublic,
    ModelVersionPublic,
    check_choice,
    check_download_file,
    download_name,
    download_suffix,
)
from headstart.kernels.store import export_key, file_sha256, version_key
from headstart.kernels.tasks.artifacts import ModelFacts, VersionRef
from headstart.kernels.tasks.export import ExportInput, export_version
from headstart.kernels.tasks.models import CreateInput, ValidateInput, create_model, validate_upload

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog


def model_public(session: Session, model: CatalogModel) -> ModelPublic:
    version = current_version(session, model)
    owner = session.get(User, model.owner_id)
    return ModelPublic(
        **model.model_dump(),
        owner=owner.name if owner else "?",
        params=version.params,
        size_bytes=version.size_bytes,
    )


def current_version(session: Session, model: CatalogModel, version: int | None = None) -> ModelVersion:
    wanted = model.version if version is None else version
    row = session.exec(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == wanted)
    ).first()
    if row is None:
        raise NotFound(f"model {model.id} has no version {wanted}")
    return row


def version_ref(model: CatalogModel, version: ModelVersion) -> VersionRef:
    return VersionRef(
        model_id=model.id,
        version=version.version,
        folder=version_key(model.id, version.version),  # type: ignore[arg-type]
        kind=version.kind,
        labels=version.labels,
        body_sha=version.body_sha,
        body_ref=version.body_ref,
        content_sha=version.content_sha,
    )


@dataclass(frozen=True)
class Export:
    """A version's export in a format of TensorFlow's: the zip kept from an earlier one (`path`),
    or the job that makes it; `name` is its download's file name."""

    name: str
    path: Path | None = None
    job: JobPublic | None = None


def model_filter(
    *,
    owner: str | None = None,
    kind: str | None = None,
    labels: builtins.list[str] | None = None,
    mine: bool = False,
    public: bool | None = None,
) -> Filter:
    """A list's filter, besides visibility; `labels` match as a set."""
    label_set = None if labels is None else (label_key(labels) or "")
    return Filter(owner=owner, kind=kind, label_set=label_set, mine=mine, public=public)


class ModelManager:
    """Creates, lists, shows, downloads, changes and deletes models, under the access rules."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Lists and shows read this snapshot of every model, kept until the catalog changes.
        self.index = ModelIndex(catalog.revisions)
        self._exporting = threading.Lock()

    # --- creating ---------------------------------------------------------------------------

    def submit_create(
        self,
        user: User,
        *,
        name: str,
        architecture: str,
        labels: list[str] | None = None,
        weights: str | None = "imagenet",
        options: dict | None = None,
        seed: int = 0,
        description: str = "",
        public: bool = False,
        imagenet_head: bool = False,
    ) -> JobPublic:
        """Queue the build of a zoo architecture as a classifier (with labels) or a feature vector.

        A request the zoo refuses (an unknown architecture, options or labels) is refused here,
        before anything is queued.
        """
        name = check_name(name, "model")
        options = dict(options or {})
        check_request(
            architecture,
            labels=labels,
            weights=weights,
            seed=seed,
            imagenet_head=imagenet_head,
            options=options,
        )
        store = self.catalog.store
        key = new_key("create")
        given = CreateInput(
            store_url=store.url,
            staging=staging_key(key),
            architecture=architecture,
            labels=labels,
            weights=weights,
            options=options,
            seed=seed,
            imagenet_head=imagenet_head,
            weights_folder=self.catalog.weights_folder,
            limits=self.catalog.model_limits,
        )
        request = {
            "name": name,
            "description": description,
            "public": public,
            "architecture": architecture,
            "seed": seed,
            "staged": [given.staging],
        }
        return self.catalog.jobs.submit(user, "create", create_model, given, key=key, request=request)

    def create(self, user: User, **request: Any) -> ModelPublic:
        """Build a zoo architecture and wait for it: the command line's way (see `submit_create`).

        `imagenet_head` keeps the pretrained ImageNet classifier and its 1000 labels instead. `seed`
        seeds the starting weights and is stored with the model, so the same create can be repeated
        weight for weight; so is where pretrained weights came from (`weights_source`).
        """
        return self._made(user, self.submit_create(user, **request))

    def submit_upload(
        self,
        user: User,
        upload: Path,
        *,
        name: str,
        labels: list[str] | None = None,
        description: str = "",
        public: bool = False,
    ) -> JobPublic:
        """Queue the validation of a `.keras` file uploaded to the store's `tmp/` (removed at the end)."""
        name = check_name(name, "model")
        # Refused before anything is queued; the validator checks again as it reads the file.
        check_model_limits(0, Path(upload).stat().st_size, self.catalog.model_limits)
        store = self.catalog.store
        key = new_key("validate")
        given = ValidateInput(
            store_url=store.url,
            source=store.share(upload),
            staging=staging_key(key),
            labels=labels,
            limits=self.catalog.model_limits,
        )
        request = {
            "name": name,
            "description": description,
            "public": public,
            "staged": [given.staging],
            "uploads": [given.source],
        }
        return self.catalog.jobs.submit(user, "validate", validate_upload, given, key=key, request=request)

    def upload(
        self,
        user: User,
        path: Path,
        *,
        name: str,
        labels: list[str] | None = None,
        description: str = "",
        public: bool = False,
    ) -> ModelPublic:
        """Validate and store a local `.keras` file and wait for it; nothing is deserialized before
        the checks."""
        path = Path(path)
        if not path.is_file():
            raise Invalid(f"no such file: {path}")
        if path.suffix != ".keras":
            raise Invalid(f"model uploads must be .keras files, not {path.name!r}")
        check_model_limits(0, path.stat().st_size, self.catalog.model_limits)
        upload = self.catalog.store.upload(path)
        try:
            job = self.submit_upload(
                user, upload, name=name, labels=labels, description=description, public=public
            )
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        return self._made(user, job)

    def _made(self, user: User, job: JobPublic) -> ModelPublic:
        """The model a create or upload job made, once it ended; its failure is raised."""
        made = self.catalog.jobs.wait(job.id)
        made.result()
        return self.get(user, made.job.result["model_id"])  # type: ignore[index]

    def record(self, session: Session, job: Job, facts: ModelFacts, placed: list[str]) -> dict:
        """A create's or an upload's end: version 1 of a new model, its staged folder moved in place."""
        request = job.request or {}
        model = CatalogModel(
            name=request["name"],
            description=request.get("description", ""),
            kind=facts.kind,
            labels=facts.labels,
            public=bool(request.get("public")),
            version=1,
            architecture=request.get("architecture"),
            seed=request.get("seed"),
            weights_source=facts.weights_source,
            owner_id=job.owner_id,
        )
        session.add(model)
        session.flush()
        self.add_version(session, model, 1, facts, request["staged"][0], placed)
        return {"model_id": model.id, "cards": [model.id] if model.public else []}

    def add_version(
        self,
        session: Session,
        model: CatalogModel,
        version: int,
        facts: ModelFacts,
        staged: str,
        placed: list[str],
        *,
        training_id: int | None = None,
    ) -> ModelVersion:
        """The version row of a job's output staged at the store key `staged`, moved into place."""
        store = self.catalog.store
        key = version_key(model.id, version)  # type: ignore[arg-type]
        # Hashed by the task that staged it; a candidate recorded before facts carried it is hashed here.
        content_sha = facts.content_sha or file_sha256(store.path(f"{staged}/{facts.artifact_file}"))
        store.claim(staged, key)
        placed.append(key)
        row = ModelVersion(
            model_id=model.id,  # type: ignore[arg-type]
            version=version,
            artifact=f"{key}/{facts.artifact_file}",
            body_ref=facts.body_ref,
            body_sha=facts.body_sha,
            content_sha=content_sha,
            params=facts.params,
            size_bytes=facts.size_bytes,
            kind=facts.kind,
            labels=facts.labels,
            training_id=training_id,
        )
        session.add(row)
        session.flush()
        return row

    # --- reading ----------------------------------------------------------------------------

    def list(
        self,
        viewer: User,
        *,
        owner: str | None = None,
        kind: str | None = None,
        labels: builtins.list[str] | None = None,
        mine: bool = False,
        public: bool | None = None,
    ) -> builtins.list[ModelPublic]:
        """Every model `viewer` may see, filtered; private models of others never appear."""
        items, _ = self.page(viewer, owner=owner, kind=kind, labels=labels, mine=mine, public=public)
        return items

    def page(
        self,
        viewer: User,
        *,
        owner: str | None = None,
        kind: str | None = None,
        labels: builtins.list[str] | None = None,
        mine: bool = False,
        public: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[builtins.list[ModelPublic], int]:
        """One page of the models `viewer` may see, oldest first, and how many match in all."""
        if (limit is not None and limit < 1) or offset < 0:
            raise Invalid("limit must be at least 1 and offset at least 0")
        wanted = model_filter(owner=owner, kind=kind, labels=labels, mine=mine, public=public)
        entries, total = self.index.current().page(int(viewer.id), wanted, limit, offset)  # type: ignore[arg-type]
        return [entry.model for entry in entries], total

    def get(self, viewer: User, model_id: int) -> ModelPublic:
        """A visible model; NotFound whether it is private or absent."""
        return self.index.current().get(int(viewer.id), model_id).model  # type: ignore[arg-type]

    def versions(self, viewer: User, model_id: int) -> builtins.list[ModelVersionPublic]:
        with transaction(self.catalog.engine) as session:
            access.get_visible_model(session, model_id, viewer)
            rows = session.exec(
                select(ModelVersion)
                .where(ModelVersion.model_id == model_id)
                .order_by(col(ModelVersion.version))
            ).all()
            return [ModelVersionPublic(**row.model_dump()) for row in rows]

    def ref(self, viewer: User, model_id: int, version: int | None = None) -> VersionRef:
        """Where a visible model's version lives, for a job to read."""
        with transaction(self.catalog.engine) as session:
            model = access.get_visible_model(session, model_id, viewer)
            return version_ref(model, current_version(session, model, version))

    def download(
        self,
        viewer: User,
        model_id: int,
        dest: Path,
        version: int | None = None,
        format: str = "keras",
    ) -> Path:
        """Write the version at `dest` (a file, or a folder to name it in) and wait for what it needs.

        `keras` (the default) is one normal `.keras` file, a shared body and its head assembled.
        `saved_model` and `tflite` are a zip of TensorFlow's SavedModel folder or `model.tflite`
        with `labels.txt` (kernels/engine/export.py): converted as a job the first time, and kept.
        """
        download_suffix(format)  # an unknown format is refused before anything is read
        ref = self.ref(viewer, model_id, version)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / download_name(model_id, ref.version, format)
        check_download_file(dest, format)
        source = None
        if format != "keras":
            export = self.submit_export(viewer, model_id, format, ref.version)
            if export.job is not None:
                self.catalog.jobs.wait(export.job.id).result()
            source = export.path or self.catalog.store.path(export_key(model_id, ref.version, format))
        elif ref.body_ref is None:
            source = self.catalog.store.path(ref.folder) / "model.keras"
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            if source is not None:
                shutil.copyfile(source, partial)
            else:
                # Only assembling loads Keras (seconds): a full model's file is copied as it is.
                from headstart.kernels.engine.keras_file import save_model
                from headstart.kernels.tasks.artifacts import load_version

                model = load_version(self.catalog.store, ref)
                save_model(model, partial, kind=ref.kind, labels=ref.labels)
            zipfile.ZipFile(partial).close()
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    # --- exporting --------------------------------------------------------------------------

    def submit_export(self, viewer: User, model_id: int, format: str, version: int | None = None) -> Export:
        """A visible version's export as `format` (`saved_model` or `tflite`): the zip kept from an
        earlier export, else the job that converts it (the viewer's own unfinished one, if any)."""
        if check_choice(format, ExportFormat, "format") == "keras":
            raise Invalid("a .keras download is the version's own file; there is nothing to export")
        ref = self.ref(viewer, model_id, version)
        store = self.catalog.store
        key = export_key(model_id, ref.version, format)
        name = download_name(model_id, ref.version, format)
        if store.exists(key):
            return Export(name, path=store.path(key))
        jobs = self.catalog.jobs
        with self._exporting:
            with transaction(self.catalog.engine) as session:
                unfinished = session.exec(
                    select(Job).where(
                        Job.kind == "export", Job.owner_id == viewer.id, col(Job.state).in_(UNFINISHED)
                    )
                ).all()
                queued = [job_public(job) for job in unfinished if (job.request or {}).get("export") == key]
            for job in queued:
                if jobs.followed(job.id):
                    return Export(name, job=job)
            if store.exists(key):
                return Export(name, path=store.path(key))  # an export of it ended meanwhile
            job_key = new_key("export")
            given = ExportInput(
                store_url=store.url,
                ref=ref,
                format=format,
                staging=staging_key(job_key),
            )
            request = {
                "model_id": model_id,
                "version": ref.version,
                "format": format,
                "export": key,
                "staged": [given.staging],
            }
            return Export(
                name, job=jobs.submit(viewer, "export", export_version, given, key=job_key, request=request)
            )

    def record_export(self, session: Session, job: Job, size: int, placed: builtins.list[str]) -> dict:
        """An export's end: its zip kept beside its version, which the model's delete removes."""
        request = job.request or {}
        model_id, version, key = request["model_id"], request["version"], request["export"]
        exists = session.exec(
            select(ModelVersion.id).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
        ).first()
        if exists is None:
            raise NotFound(f"model {model_id} has no version {version}")  # deleted while it converted
        store = self.catalog.store
        # Another export of the version may have come first; it stands, and this one's zip goes.
        if store.claim(request["staged"][0], key, exists_ok=True):
            placed.append(key)
        return {"model_id": model_id, "version": version, "format": request["format"], "size_bytes": size}

    # --- changing ---------------------------------------------------------------------------

    def update(
        self,
        viewer: User,
        model_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        public: bool | None = None,
    ) -> ModelPublic:
        """Rename, describe, publish or unpublish; only the owner may."""
        with transaction(self.catalog.engine) as session:
            action = "publish" if public else "unpublish" if public is False else "change"
            model = access.get_owned_model(session, model_id, viewer, action)
            if name is not None:
                model.name = check_name(name, "model")
            if description is not None:
                model.description = description
            if public is not None:
                model.public = public
            model.updated_at = now()
            session.add(model)
            session.flush()
            changed = model_public(session, model)
        self.catalog.refresh_card(model_id)
        return changed

    def delete(self, viewer: User, model_id: int) -> None:
        """Delete a model with its versions, trainings and evaluations; only the owner may.

        The database does the cascade (`ondelete` in tables.py): versions, trainings with their
        epochs and jobs, and evaluations go with the model, and its children lose their parent.
        """
        with transaction(self.catalog.engine) as session:
            model = access.get_owned_model(session, model_id, viewer, "delete")
            candidates = session.exec(
                select(Training.candidate).where(
                    Training.model_id == model_id, col(Training.candidate).is_not(None)
                )
            ).all()
            session.delete(model)
        # Files go after the commit: a crash here leaves unreferenced files, never a broken catalog.
        for key in candidates:
            if key is not None:
                self.catalog.store.delete(key)
        self.catalog.store.delete(f"models/{model_id}")
        self.catalog.refresh_card(model_id)
