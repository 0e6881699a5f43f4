"""The catalog database: an engine for a SQLite file or a PostgreSQL URL, migrated by alembic."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine, select

from headstart.extension.catalog.tables import (
    CatalogModel,
    Dataset,
    Evaluation,
    ModelVersion,
    Revision,
    User,
)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _enable_sqlite_foreign_keys(dbapi_connection: object, _record: object) -> None:
    # SQLite ignores ON DELETE CASCADE unless each connection asks for it.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def connect(url: str, *, migrate: bool = True) -> Engine:
    """An engine for `url`, upgraded to the newest schema unless `migrate` is False."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    if migrate:
        upgrade(engine)
    return engine


def upgrade(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


# --- the revisions: what readers' caches are keyed by -------------------------------------------

# Each kept table's family. Lists and shows are built from the models family, leaderboards from it
# and their dataset's evaluations. Trainings and epochs are read fresh, so a running training's
# epochs throw no reader's work away, and an ingest or a score leaves the models' snapshot alone.
FAMILY_OF: dict[type, str] = {
    User: "models",
    CatalogModel: "models",
    ModelVersion: "models",
    Dataset: "datasets",
    Evaluation: "evaluations",
}


class Revisions(NamedTuple):
    """Every family's revision at one read, in the `revisions` table's order."""

    datasets: int
    evaluations: int
    models: int


FAMILIES = Revisions._fields


class _Commits:
    """How many transactions revising each family this process has committed to one database."""

    def __init__(self) -> None:
        self.numbers = dict.fromkeys(FAMILIES, 0)
        self._lock = threading.Lock()

    def add(self, families: set[str]) -> None:
        with self._lock:
            # A new dict, never one changed in place: a reader holding the last one sees it whole.
            self.numbers = {f: n + (f in families) for f, n in self.numbers.items()}


_commits: dict[str, _Commits] = {}
_commits_lock = threading.Lock()


def _commit_counter(engine: Engine) -> _Commits:
    # By URL, not engine: two catalogs in one process on one database see each other's commits.
    key = engine.url.render_as_string(hide_password=True)
    with _commits_lock:
        return _commits.setdefault(key, _Commits())


class CatalogSession(Session):
    """A session that counts its transaction in the `revisions` rows of the families it changes."""


@event.listens_for(CatalogSession, "before_flush")
def _count_revision(session: Session, _context: object, _instances: object) -> None:
    counted: set[str] = session.info.setdefault("revised", set())
    touched = [*session.new, *session.deleted]
    touched += [row for row in session.dirty if session.is_modified(row)]
    families = {FAMILY_OF[type(row)] for row in touched if type(row) in FAMILY_OF} - counted
    # In one order, so that two transactions never wait on each other's rows (PostgreSQL locks them).
    for family in sorted(families):
        # On the session's connection, so the count commits or rolls back with the change itself.
        session.connection().execute(
            update(Revision).where(Revision.family == family).values(number=Revision.number + 1)  # type: ignore[arg-type]
        )
    counted |= families


@event.listens_for(CatalogSession, "after_commit")
def _note_commit(session: Session) -> None:
    if revised := session.info.pop("revised", None):
        _commit_counter(session.get_bind()).add(revised)  # type: ignore[arg-type]


@event.listens_for(CatalogSession, "after_rollback")
def _forget_revision(session: Session) -> None:
    session.info.pop("revised", None)


class _Read(NamedTuple):
    revisions: Revisions
    commits: dict[str, int]  # this process's commits per family when the read began
    began: float  # time.monotonic()


class RevisionClock:
    """The catalog's revisions, asked of the database only when they may have moved.

    `peek(families)` answers without the database while this process has committed no change to
    those families since the last `read()` began and that read is younger than `poll_seconds`:
    changes made here are seen at once, changes made by other processes sharing the database within
    `poll_seconds`. A family's own commits leave the others' peeks alone, so a score landing does
    not send every list of models to the database.
    """

    def __init__(self, engine: Engine, poll_seconds: float = 1.0) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._commits = _commit_counter(engine)
        self._last: _Read | None = None
        self._reading = threading.Lock()

    def peek(self, families: tuple[str, ...] = FAMILIES) -> Revisions | None:
        """The last read if it still holds for `families` (its other fields may be behind)."""
        last, numbers = self._last, self._commits.numbers
        if last is None or time.monotonic() - last.began > self.poll_seconds:
            return None
        if any(last.commits[family] != numbers[family] for family in families):
            return None
        return last.revisions

    def read(self) -> Revisions:
        """The revisions as the database has them now.

        Readers that arrive together share a query: one that waited while another read ran takes
        the next read to begin after it asked, which saw every commit it could have seen itself.
        """
        asked = time.monotonic()
        with self._reading:
            last = self._last
            if last is not None and last.began > asked:
                return last.revisions
            began, commits = time.monotonic(), self._commits.numbers  # a commit after is seen next time
            with Session(self.engine) as session:
                numbers = dict(session.exec(select(Revision.family, Revision.number)).all())
            revisions = Revisions(*(numbers[family] for family in FAMILIES))
            self._last = _Read(revisions, commits, began)
            return revisions


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed as one transaction, or rolled back on any error."""
    with CatalogSession(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
