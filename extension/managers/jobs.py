"""Jobs: every heavy step, recorded with its state, handed to the catalog's runner, and recorded again.

A job is `queued` until its task reports that it started, then `running`, and ends `succeeded`,
`failed` (with the reason) or `cancelled`. Its row is the one place its run state lives. The runner
(`c.Catalog.runner_class`: threads of this process for the command line, the Dask cluster in the
service) only runs tasks; what they report and return comes back here:

- each report updates the job's row once (its start, its progress, a training's epoch), and a kind's
  listener records what the report carries in the same transaction (a training's epoch row);
- the end runs the kind's recorder, the one place where the service records what a task returned
  (a dataset's row and shards, a model's version, a training's candidate), in the transaction that
  marks the job succeeded. A job that did not succeed leaves nothing: the store keys it staged are
  removed, and its uploads are removed whatever the end.

Nothing waits for a job in a request: the handlers answer with the job, and whoever wants the end
follows it (`wait` for the command line, `ended` for a coroutine). Nothing stays `running` either:
a service start re-attaches to the jobs its runner still has and fails the others as lost.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Job, User, now
from headstart.kernels.errors import Cancelled, HeadstartError, NotFound, error_class, error_code
from headstart.kernels.schemas import UNFINISHED, JobKind, JobPublic

if TYPE_CHECKING:
    from headstart.extension.jobs.runner import Task
    from headstart.extension.manager import Catalog

LOST = "lost on restart: the cluster no longer had it"
# How long an interrupted `wait` gives its cancelled job to end before it stops waiting.
CANCEL_GRACE_SECONDS = 30.0

# Each job kind's one recorder, as (Catalog attribute, method): (session, job row, the task's
# result, store keys placed) -> what the job made, for its row ({"dataset_id": 3}; with "cards", the
# models whose cards to refresh once it is committed).
RECORDERS = {
    "ingest": ("datasets", "record"),
    "create": ("models", "record"),
    "validate": ("models", "record"),
    "train": ("trainings", "record"),
    "sweep": ("sweeps", "record"),
    "evaluate": ("evaluations", "record"),
    "export": ("models", "record_export"),
    "probe": ("benchmark", "record"),
}
# Kinds whose reports carry more than progress: (session, job row, a report) -> records it.
LISTENERS = {"train": ("trainings", "record_epoch"), "sweep": ("sweeps", "record_epoch")}
Watcher = Callable[[dict[str, Any]], None]


def job_public(job: Job) -> JobPublic:
    return JobPublic(**job.model_dump())


def reason_of(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error) if isinstance(error, HeadstartError) else f"{type(error).__name__}: {error}"
    return text[:2000]


def progress_of(phase: str, progress: Callable[[int, int], None] | None) -> Watcher | None:
    """A watcher that hands a job's progress in one phase to `progress(done, total)`."""
    if progress is None:
        return None

    def watch(message: dict[str, Any]) -> None:
        if message.get("event") == "progress" and message.get("phase") == phase:
            progress(int(message["done"]), int(message["total"]))

    return watch


def error_body(error: BaseException | str) -> dict[str, Any]:
    """A job's error as an API error body: its code, its message, and its items when it has some."""
    body: dict[str, Any] = {"error": error_code(error) if isinstance(error, BaseException) else "internal"}
    body["detail"] = reason_of(error)
    if isinstance(error, HeadstartError) and isinstance(error.detail, list):
        body["items"] = error.detail
    return body


def new_key(kind: str) -> str:
    """A job's key, which names its Dask task: unique across catalogs that share a scheduler."""
    return f"headstart-{kind}-{secrets.token_hex(8)}"


def staging_key(key: str) -> str:
    """The store key a job stages its artifact under until its recorder commits it."""
    return f"tmp/{key}"


class Ended:
    """A job's end as its follower sees it: the job's row, and the task's result when it succeeded."""

    def __init__(self, job: JobPublic, value: Any = None, error: BaseException | None = None) -> None:
        self.job = job
        self.value = value
        self.error = error

    def result(self) -> Any:
        """The task's result; a failed job raises its error, a cancelled one Cancelled."""
        if self.job.state == "succeeded":
            return self.value
        if self.job.state == "cancelled":
            raise Cancelled(self.job.reason or f"job {self.job.id} was cancelled")
        if isinstance(self.error, BaseException):
            raise self.error
        error = self.job.error or {}
        raise error_class(error.get("error"))(
            self.job.reason or f"job {self.job.id} failed", detail=error.get("items")
        )


class JobManager:
    """Records jobs, hands them to the catalog's runner, and records what they report and return."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._ends: dict[int, Future[Ended]] = {}
        self._watchers: dict[int, Watcher] = {}

    @property
    def runner(self) -> Any:
        return self.catalog.runner

    # --- records ----------------------------------------------------------------------------

    @staticmethod
    def create(
        session: Session,
        owner_id: int,
        kind: JobKind,
        *,
        key: str | None = None,
        training_id: int | None = None,
        sweep_id: int | None = None,
        request: dict[str, Any] | None = None,
    ) -> Job:
        """A queued job in the caller's transaction.

        `request` holds what its recorder needs besides the task's result, and the store keys to
        clean up: `staged` (removed unless it succeeded) and `uploads` (removed at its end).
        """
        job = Job(
            kind=kind,
            key=key or new_key(kind),
            owner_id=owner_id,
            training_id=training_id,
            sweep_id=sweep_id,
            request=request or {},
        )
        session.add(job)
        session.flush()
        return job

    def get(self, viewer: User, job_id: int) -> JobPublic:
        """One of the viewer's own jobs; another user's is NotFound."""
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.owner_id != viewer.id:
                raise NotFound(f"job {job_id} not found")
            return job_public(job)

    def list(self, viewer: User, *, unfinished: bool = False) -> builtins.list[JobPublic]:
        with transaction(self.catalog.engine) as session:
            query = select(Job).where(Job.owner_id == viewer.id)
            if unfinished:
                query = query.where(col(Job.state).in_(UNFINISHED))
            return [job_public(job) for job in session.exec(query.order_by(col(Job.id))).all()]

    # --- running ----------------------------------------------------------------------------

    def submit(
        self,
        owner: User,
        kind: JobKind,
        task: Task,
        given: Any,
        *,
        key: str,
        request: dict[str, Any] | None = None,
        resources: dict[str, float] | None = None,
        watch: Watcher | None = None,
        affinity: str | None = None,
    ) -> JobPublic:
        """Record a job and hand `task(given)` to the runner; returns the queued job at once.
        `affinity` names what the task reuses where it ran before (`JobRunner.submit`)."""
        with transaction(self.catalog.engine) as session:
            job = self.create(session, owner.id, kind, key=key, request=request)  # type: ignore[arg-type]
            public = job_public(job)
        self.start(public, task, given, resources=resources, watch=watch, affinity=affinity)
        return public

    def start(
        self,
        job: JobPublic,
        task: Task,
        given: Any,
        *,
        resources: dict[str, float] | None = None,
        watch: Watcher | None = None,
        affinity: str | None = None,
    ) -> None:
        """Hand a recorded job's task to the runner. One that cannot be handed over fails now."""
        self._follow(job.id, watch)
        try:
            self.runner.submit(
                job.key,
                task,
                given,
                on_event=lambda message: self.received(job.id, message),
                on_done=lambda state, value: self._done(job.id, state, value),
                resources=resources,
                affinity=affinity,
            )
        except BaseException as error:
            self._done(job.id, "failed", f"it could not be submitted: {reason_of(error)}")
            raise

    def followed(self, job_id: int) -> bool:
        """Whether this process hears the job's end: its runner has it (a job left unfinished by a
        process that died would never end, and is not worth waiting for)."""
        with self._lock:
            return job_id in self._ends

    def _follow(self, job_id: int, watch: Watcher | None) -> Future[Ended]:
        with self._lock:
            end = self._ends.setdefault(job_id, Future())
            if watch is not None:
                self._watchers[job_id] = watch
        return end

    def received(self, job_id: int, message: dict[str, Any]) -> None:
        """Record one report of a running job: its start, its progress, or an epoch (a listener's)."""
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in UNFINISHED:
                return
            event = message.get("event")
            if event == "started":
                job.state = "running"
                job.attempts += 1
                job.worker = message.get("worker")
                job.started_at = job.started_at or now()
                job.phase, job.done, job.total = None, 0, 0
            elif event == "progress":
                job.phase = str(message.get("phase"))
                job.done, job.total = int(message.get("done", 0)), int(message.get("total", 0))
            if job.kind in LISTENERS:
                manager, method = LISTENERS[job.kind]
                getattr(getattr(self.catalog, manager), method)(session, job, message)
            session.add(job)
        watch = self._watchers.get(job_id)
        if watch is not None:
            watch(message)

    def _done(self, job_id: int, state: str, value: Any) -> None:
        """A job's end, from the runner: record its result, or clean up after it."""
        store = self.catalog.store
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            request = dict(job.request or {}) if job is not None else {}
            before = job.state if job is not None else None
        unfinished = before in UNFINISHED
        # What the job read goes first, and what it staged goes before its failure is told: whoever
        # sees the job ended sees the store cleaned up after it.
        for key in request.get("uploads", []):
            store.delete(key)
        # The job as it ended, from the transaction that ended it (read again only if none did).
        public: JobPublic | None = None
        if unfinished and state == "succeeded":
            try:
                with store.placing() as placed, transaction(self.catalog.engine) as session:
                    row = session.get(Job, job_id)
                    manager, method = RECORDERS[row.kind]  # type: ignore[union-attr]
                    made = getattr(getattr(self.catalog, manager), method)(session, row, value, placed)
                    row.state, row.result, row.finished_at = "succeeded", made, now()  # type: ignore[union-attr]
                    session.add(row)
                    session.flush()
                    recorded = job_public(row)  # type: ignore[arg-type]
            except BaseException as error:
                self.catalog.log.error("job %s: its result could not be recorded: %s", job_id, error)
                state, value = "failed", error
            else:
                public = recorded
                for model_id in (made or {}).get("cards", []):
                    self.catalog.refresh_card(int(model_id))
        if before != "succeeded" and (state != "succeeded" or not unfinished):
            # Not recorded (it failed, or it ended after it was given up for lost): what it staged goes.
            for key in request.get("staged", []):
                store.delete(key)
        if unfinished and state != "succeeded":
            body = None if state == "cancelled" else error_body(value)
            ended = self.finish(job_id, state, reason_of(value), body)
            public = job_public(ended) if ended is not None else None
        if public is None:
            with transaction(self.catalog.engine) as session:
                row = session.get(Job, job_id)
                public = job_public(row) if row is not None else None
        with self._lock:
            end = self._ends.pop(job_id, None)
            self._watchers.pop(job_id, None)
        if end is not None and public is not None and not end.done():
            failed = value if isinstance(value, BaseException) else None
            end.set_result(Ended(public, value if public.state == "succeeded" else None, failed))

    def finish(
        self, job_id: int, state: str, reason: str | None = None, error: dict | None = None
    ) -> Job | None:
        """End a job that did not succeed; a job already ended keeps its first end."""
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in UNFINISHED:
                return None
            job.state, job.reason, job.error, job.finished_at = state, reason, error, now()
            session.add(job)
            return job

    def cancel(self, job: JobPublic) -> None:
        """Ask a queued or running job to stop; it ends `cancelled`, or as it was ending anyway."""
        self.runner.cancel(job.key)

    # --- following --------------------------------------------------------------------------

    def wait(self, job_id: int, timeout: float | None = None) -> Ended:
        """Block until a job of this process's runner ends (the command line follows its jobs so).

        An interrupt (Ctrl-C) cancels the job, gives it a moment to end, and is raised again.
        """
        end = self._end_of(job_id)
        try:
            return end.result(timeout)
        except KeyboardInterrupt:
            with transaction(self.catalog.engine) as session:
                job = session.get(Job, job_id)
                key = job.key if job is not None else None
            if key is not None:
                self.runner.cancel(key)
                with contextlib.suppress(Exception):
                    end.result(CANCEL_GRACE_SECONDS)
            raise

    async def ended(self, job_id: int) -> Ended:
        """The end of a job, for a coroutine: nothing blocks while it waits."""
        return await asyncio.wrap_future(self._end_of(job_id))

    def _end_of(self, job_id: int) -> Future[Ended]:
        """The future of a job's end; resolved at once when the job ended before it was followed."""
        end = self._follow(job_id, None)
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            public = job_public(job)
        if public.state not in UNFINISHED:
            with self._lock:
                self._ends.pop(job_id, None)
            if not end.done():
                end.set_result(Ended(public))
        return end

    def reattach(self) -> tuple[int, int]:
        """After a service start: follow every unfinished job its runner still has; fail the others.

        Returns (re-attached, lost).
        """
        with transaction(self.catalog.engine) as session:
            rows = session.exec(select(Job).where(col(Job.state).in_(UNFINISHED))).all()
            jobs = [job_public(row) for row in rows]
            resources = {row.id: (row.request or {}).get("resources") for row in rows}
        attached = lost = 0
        for job in jobs:
            self._follow(job.id, None)
            followed = self.runner.attach(
                job.key,
                on_event=lambda message, job_id=job.id: self.received(job_id, message),
                on_done=lambda state, value, job_id=job.id: self._done(job_id, state, value),
                resources=resources.get(job.id),
            )
            if followed:
                attached += 1
            else:
                self._done(job.id, "failed", LOST)
                lost += 1
        return attached, lost
