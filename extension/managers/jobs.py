"""Jobs: every heavy step, recorded with its state, carried out on the cluster or in this process.

In the service, `Catalog.runner` is a `JobRunner` and jobs run on Dask workers; in the CLI there is
none and the same task functions run inline, through the same records. A job is `queued` until a
worker reports that it started it, then `running`, and ends `succeeded`, `failed` (with the
reason) or `cancelled`. Nothing stays `running`: a service restart re-attaches to the jobs its
cluster still has and fails the others as "lost on restart".
"""

from __future__ import annotations

import builtins
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Job, User, now
from headstart.extension.jobs.progress import LocalReporter, run_as_job
from headstart.kernels.errors import Cancelled, HeadstartError, NotFound
from headstart.kernels.schemas import JobPublic

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog

UNFINISHED = ("queued", "running")
LOST = "lost on restart: the cluster no longer had it"


def job_public(job: Job) -> JobPublic:
    return JobPublic(**job.model_dump())


def reason_of(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error) if isinstance(error, HeadstartError) else f"{type(error).__name__}: {error}"
    return text[:2000]


class JobManager:
    """Records jobs, runs them (on the cluster when there is one), and follows what they report."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Epochs and other reports of a job's kind go to these, keyed by kind (trainings add theirs).
        self.listeners: dict[str, Callable[[Job, dict[str, Any]], None]] = {}

    @property
    def runner(self) -> Any:
        return self.catalog.runner

    # --- records ----------------------------------------------------------------------------

    @staticmethod
    def create(session: Session, owner_id: int, kind: str, *, training_id: int | None = None) -> Job:
        """A queued job in the caller's transaction; its key names the Dask task."""
        job = Job(kind=kind, owner_id=owner_id, training_id=training_id)
        session.add(job)
        session.flush()
        # The id makes it findable, the random part unique across catalogs sharing a scheduler.
        job.key = f"headstart-{kind}-{job.id}-{secrets.token_hex(4)}"
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

    def received(self, job_id: int, message: dict[str, Any]) -> None:
        """Record one report of a running job: its start, progress, or (for listeners) an epoch."""
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
            session.add(job)
        # After the commit: a listener writes in its own transaction, and SQLite has one writer.
        listener = self.listeners.get(job.kind)
        if listener is not None:
            listener(job, message)

    def finish(self, job_id: int, state: str, reason: str | None = None) -> Job | None:
        """End a job; a job already ended keeps its first end."""
        with transaction(self.catalog.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in UNFINISHED:
                return None
            job.state, job.reason, job.finished_at = state, reason, now()
            session.add(job)
            return job

    # --- running ----------------------------------------------------------------------------

    def execute(
        self,
        owner: User,
        kind: str,
        function: Callable[..., Any],
        *args: Any,
        phase: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run `function(*args, **kwargs)` as a job and wait for its result.

        On the cluster when the catalog has a runner, else in this thread; a failure is raised
        as the task raised it, after the job is recorded as failed. With a `phase`, the function
        gets a `progress(done, total)` that reports to the job (and to `on_progress`).
        """
        with transaction(self.catalog.engine) as session:
            job = self.create(session, owner.id, kind)  # type: ignore[arg-type]
            job_id, key = int(job.id), job.key  # type: ignore[arg-type]

        def relay(message: dict[str, Any]) -> None:
            self.received(job_id, message)
            if on_progress is not None and message.get("event") == "progress":
                on_progress(message["done"], message["total"])

        if self.runner is None:
            reporter = LocalReporter(relay)
            try:
                result = run_as_job(key, phase, function, args, kwargs, reporter)
            except Cancelled as error:
                self.finish(job_id, "cancelled", reason_of(error))
                raise
            except BaseException as error:
                self.finish(job_id, "failed", reason_of(error))
                raise
            self.finish(job_id, "succeeded")
            return result
        ended = threading.Event()
        outcome: dict[str, Any] = {}

        def done(state: str, value: Any) -> None:
            outcome.update(state=state, value=value)
            self.finish(job_id, state, None if state == "succeeded" else reason_of(value))
            ended.set()

        try:
            self.runner.submit(
                key,
                run_as_job,
                key,
                phase,
                function,
                args,
                kwargs,
                on_event=relay,
                on_done=done,
            )
        except BaseException as error:
            self.finish(job_id, "failed", f"it could not be submitted: {reason_of(error)}")
            raise
        while not ended.wait(1.0):
            if self.runner.closed:
                # The service is stopping: the job is left to the next start (re-attached or lost).
                raise HeadstartError(f"the catalog service stopped while job {job_id} ran")
        if outcome["state"] == "succeeded":
            return outcome["value"]
        value = outcome["value"]
        raise value if isinstance(value, BaseException) else Cancelled(str(value))

    def reattach(self, follow: Callable[[Job], bool]) -> tuple[int, int]:
        """After a restart: `follow(job)` re-attaches each unfinished job; the others are lost.

        Returns (re-attached, lost).
        """
        with transaction(self.catalog.engine) as session:
            jobs = session.exec(select(Job).where(col(Job.state).in_(UNFINISHED))).all()
        attached = lost = 0
        for job in jobs:
            if self.runner is not None and follow(job):
                attached += 1
            else:
                self.finish(int(job.id), "failed", LOST)  # type: ignore[arg-type]
                lost += 1
        return attached, lost
