"""The models' public rows, kept in memory for one revision of the models.

Listing and showing are the catalog's hottest reads. Against 10,000 models a page cost a counting
query, an OFFSET query and fifty ORM rows, about 8 ms of one core, and a show about 2 ms; from a
snapshot held until the models' revision moves (`catalog.database.RevisionClock`), a page is a slice of a
filtered list that is itself kept per viewer and filter, and each row's JSON is made once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select as columns
from sqlmodel import Session, col

from headstart.extension.catalog.database import RevisionClock
from headstart.extension.catalog.tables import CatalogModel, ModelVersion, User
from headstart.extension.managers.heap import settle
from headstart.kernels.errors import NotFound
from headstart.kernels.schemas import ModelPublic

# Filtered lists kept per snapshot: one per (viewer, filter) asked lately.
KEPT_LISTS = 256

# ModelPublic's fields that the models table stores, in the order the snapshot's query reads them:
# a field added to both is listed and shown without a change here.
_MODEL_COLUMNS = tuple(name for name in ModelPublic.model_fields if name in CatalogModel.model_fields)


class Filter(NamedTuple):
    """What a list asks for besides visibility.

    `label_set` is `tables.label_key(labels)`, or "" for models without labels (an empty set).
    """

    owner: str | None = None
    kind: str | None = None
    label_set: str | None = None
    mine: bool = False
    public: bool | None = None


@dataclass(slots=True)
class Entry:
    """One model's public row, with what filters need, and its JSON made on first use."""

    id: int
    owner_id: int
    public: bool
    kind: str
    label_set: str | None
    fields: dict[str, Any]
    _model: ModelPublic | None = None
    _json: bytes | None = None

    @property
    def model(self) -> ModelPublic:
        if self._model is None:
            self._model = ModelPublic(**self.fields)
        return self._model

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = self.model.model_dump_json().encode()
        return self._json

    def visible_to(self, viewer_id: int) -> bool:
        # catalog.access rule 5, as access.visible_to says it in SQL.
        return self.public or self.owner_id == viewer_id

    def matches(self, viewer_id: int, wanted: Filter) -> bool:
        return (
            self.visible_to(viewer_id)
            and (not wanted.mine or self.owner_id == viewer_id)
            and (wanted.owner is None or self.fields["owner"] == wanted.owner)
            and (wanted.kind is None or self.kind == wanted.kind)
            and (wanted.label_set is None or (self.label_set or "") == wanted.label_set)
            and (wanted.public is None or self.public is wanted.public)
        )


class Snapshot:
    """Every model at one revision of the models, oldest first; it answers pages and shows for any
    viewer."""

    def __init__(self, revision: int, entries: list[Entry]) -> None:
        self.revision = revision
        self.entries = entries
        self.by_id = {entry.id: entry for entry in entries}
        self._lists: OrderedDict[tuple[int, Filter], list[Entry]] = OrderedDict()
        self._lock = threading.Lock()

    def matching(self, viewer_id: int, wanted: Filter) -> list[Entry]:
        key = (viewer_id, wanted)
        with self._lock:
            kept = self._lists.get(key)
            if kept is not None:
                self._lists.move_to_end(key)
                return kept
        found = [entry for entry in self.entries if entry.matches(viewer_id, wanted)]
        with self._lock:
            self._lists[key] = found
            while len(self._lists) > KEPT_LISTS:
                self._lists.popitem(last=False)
        return found

    def page(self, viewer_id: int, wanted: Filter, limit: int | None, offset: int) -> tuple[list[Entry], int]:
        found = self.matching(viewer_id, wanted)
        end = None if limit is None else offset + limit
        return found[offset:end], len(found)

    def page_json(self, viewer_id: int, wanted: Filter, limit: int, offset: int) -> bytes:
        """The API's `Page` of models as JSON, joined from each row's JSON."""
        items, total = self.page(viewer_id, wanted, limit, offset)
        rows = b",".join(entry.json for entry in items)
        return b'{"items":[%s],"total":%d,"limit":%d,"offset":%d}' % (rows, total, limit, offset)

    def get(self, viewer_id: int, model_id: int) -> Entry:
        """A visible model's entry; NotFound whether it is private or absent."""
        entry = self.by_id.get(model_id)
        if entry is None or not entry.visible_to(viewer_id):
            raise NotFound(f"model {model_id} not found")
        return entry


class ModelIndex:
    """The newest snapshot of the models, rebuilt when the models' revision has moved (a dataset's
    or an evaluation's leaves it alone)."""

    def __init__(self, clock: RevisionClock) -> None:
        self.clock = clock
        self._snapshot: Snapshot | None = None
        self._building = threading.Lock()

    def peek(self) -> Snapshot | None:
        """The snapshot if it is known current without asking the database, else None."""
        snapshot, revisions = self._snapshot, self.clock.peek(("models",))
        if snapshot is not None and revisions is not None and snapshot.revision == revisions.models:
            return snapshot
        return None

    def current(self) -> Snapshot:
        """The snapshot at the database's revision, built when it has moved (database work)."""
        revision = self.clock.read().models
        snapshot = self._snapshot
        if snapshot is not None and snapshot.revision == revision:
            return snapshot
        with self._building:
            snapshot = self._snapshot
            if snapshot is None or snapshot.revision != revision:
                # The revision was read before the rows: a change committed in between makes the
                # next read differ, so the snapshot is never kept past a change it missed.
                snapshot = Snapshot(revision, self._load())
                self._snapshot = snapshot
                settle()
        return snapshot

    def _load(self) -> list[Entry]:
        query = (
            columns(
                *(getattr(CatalogModel, name) for name in _MODEL_COLUMNS),
                col(CatalogModel.owner_id),
                col(CatalogModel.label_set),
                col(ModelVersion.params),
                col(ModelVersion.size_bytes),
                col(User.name),
            )
            .join(
                ModelVersion,
                (col(ModelVersion.model_id) == CatalogModel.id)
                & (col(ModelVersion.version) == CatalogModel.version),
            )
            .join(User, col(User.id) == CatalogModel.owner_id)
            .order_by(col(CatalogModel.id))
        )
        entries = []
        with Session(self.clock.engine) as session:
            for row in session.execute(query):
                fields = dict(zip(_MODEL_COLUMNS, row, strict=False))
                owner_id, label_set, params, size_bytes, owner = row[len(_MODEL_COLUMNS) :]
                fields.update(owner=owner, params=params, size_bytes=size_bytes)
                entries.append(
                    Entry(fields["id"], owner_id, fields["public"], fields["kind"], label_set, fields)
                )
        return entries
