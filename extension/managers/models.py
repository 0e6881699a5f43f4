"""Models: create from the zoo, upload, list, show, download, change and delete (rules 1, 5, 6, 8)."""

from __future__ import annotations

import builtins
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import (
    CatalogModel,
    ModelVersion,
    Training,
    User,
    label_key,
    now,
)
from headstart.extension.jobs.artifacts import ModelFacts, VersionRef, create_model, upload_model
from headstart.extension.managers.datasets import check_name
from headstart.extension.managers.model_index import Filter, ModelIndex
from headstart.extension.store import version_key
from headstart.kernels.engine.limits import check_model_limits
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import ModelPublic, ModelVersionPublic

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
        model_id=model.id,  # type: ignore[arg-type]
        version=version.version,
        folder=version_key(model.id, version.version),  # type: ignore[arg-type]
        kind=version.kind,
        labels=version.labels,
        body_sha=version.body_sha,
        body_ref=version.body_ref,
    )


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

    # --- creating ---------------------------------------------------------------------------

    def create(
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
    ) -> ModelPublic:
        """Build a zoo architecture as a classifier (with labels) or a feature vector (without).

        `imagenet_head` keeps the pretrained ImageNet classifier and its 1000 labels instead. `seed`
        seeds the starting weights and is stored with the model, so the same create can be repeated
        weight for weight; so is where pretrained weights came from (`weights_source`).
        """
        name = check_name(name, "model")
        store = self.catalog.store
        with store.staging() as folder:
            facts = self.catalog.jobs.execute(
                user,
                "create",
                create_model,
                architecture,
                labels,
                weights,
                options or {},
                folder,
                self.catalog.model_limits,
                seed,
                store_root=store.url,
                weights_folder=self.catalog.weights_folder,
                imagenet_head=imagenet_head,
            )
            return self.record(
                user,
                facts,
                folder,
                name=name,
                description=description,
                public=public,
                architecture=architecture,
                seed=seed,
            )

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
        """Validate and store an uploaded `.keras` file; nothing is deserialized before the checks."""
        name = check_name(name, "model")
        path = Path(path)
        if not path.is_file():
            raise Invalid(f"no such file: {path}")
        if path.suffix != ".keras":
            raise Invalid(f"model uploads must be .keras files, not {path.name!r}")
        # Refused before anything is copied or Keras is loaded; the validator checks again inside.
        check_model_limits(0, path.stat().st_size, self.catalog.model_limits)
        store = self.catalog.store
        with store.staging() as folder:
            facts = self.catalog.jobs.execute(
                user, "validate", upload_model, path, labels, folder, self.catalog.model_limits
            )
            return self.record(user, facts, folder, name=name, description=description, public=public)

    def record(
        self,
        owner: User,
        facts: ModelFacts,
        staged: Path,
        *,
        name: str,
        description: str = "",
        public: bool = False,
        architecture: str | None = None,
        seed: int | None = None,
    ) -> ModelPublic:
        """Commit a staged model folder as version 1 of a new model, in one transaction."""
        store = self.catalog.store
        with store.placing() as placed, transaction(self.catalog.engine) as session:
            model = CatalogModel(
                name=name,
                description=description,
                kind=facts.kind,
                labels=facts.labels,
                public=public,
                version=1,
                architecture=architecture,
                seed=seed,
                weights_source=facts.weights_source,
                owner_id=owner.id,  # type: ignore[arg-type]
            )
            session.add(model)
            session.flush()
            self.add_version(session, model, 1, facts, staged, placed)
            created = model_public(session, model)
        if created.public:
            self.catalog.refresh_card(created.id)
        return created

    def add_version(
        self,
        session: Session,
        model: CatalogModel,
        version: int,
        facts: ModelFacts,
        staged: Path,
        placed: list[str],
        *,
        training_id: int | None = None,
    ) -> ModelVersion:
        key = version_key(model.id, version)  # type: ignore[arg-type]
        self.catalog.store.commit(staged, key)
        placed.append(key)
        row = ModelVersion(
            model_id=model.id,  # type: ignore[arg-type]
            version=version,
            artifact=f"{key}/{facts.artifact_file}",
            body_ref=facts.body_ref,
            body_sha=facts.body_sha,
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

    def download(self, viewer: User, model_id: int, dest: Path, version: int | None = None) -> Path:
        """Write the version as one normal `.keras` file, assembling a shared body and its head."""
        ref = self.ref(viewer, model_id, version)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"model-{model_id}-v{ref.version}.keras"
        if dest.suffix != ".keras":
            raise Invalid(f"the download must be written to a .keras file, not {dest.name!r}")
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            if ref.body_ref is None:
                shutil.copyfile(self.catalog.store.path(ref.folder) / "model.keras", partial)
            else:
                # Only assembling loads Keras (seconds): a full model's file is copied as it is.
                from headstart.extension.jobs.artifacts import load_version
                from headstart.kernels.engine.keras_file import save_model

                model = load_version(self.catalog.store, ref)
                save_model(model, partial, kind=ref.kind, labels=ref.labels)
            zipfile.ZipFile(partial).close()
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

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
            self.catalog.store.delete(key)
        self.catalog.store.delete(f"models/{model_id}")
        self.catalog.refresh_card(model_id)
