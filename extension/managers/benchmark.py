"""The transfer benchmark: every body a viewer may see, by every dataset, one standard probe per cell.

A body is named by its content (the sha256 its versions carry), so the K re-trained variants of a
model are one row, and a feature vector's row is its own body. A cell is the standard linear probe
(kernels/engine/probe.py) of the body on the dataset, computed by a `probe` job once and kept in
`probes` for good: a changed body is another sha, and datasets never change. A missing cell is
queued (once, whoever asks) and shows as pending; a row exists only for a viewer who may see one of
its models, so a private body's row is its owner's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Dataset, Job, ModelVersion, Probe, User
from headstart.extension.managers.datasets import DatasetManager
from headstart.extension.managers.jobs import LOST, job_public, new_key
from headstart.extension.managers.models import version_ref
from headstart.kernels.engine.scoring import EvaluationResult
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import (
    UNFINISHED,
    BenchmarkCell,
    BenchmarkCellPublic,
    BenchmarkModel,
    BenchmarkPublic,
    BenchmarkRow,
    JobPublic,
)
from headstart.kernels.tasks.artifacts import VersionRef
from headstart.kernels.tasks.probe import ProbeInput, probe

if TYPE_CHECKING:
    from headstart.extension.manager import Catalog

PROBE = (
    "multinomial logistic regression (L2, C=1, lbfgs) on the train split's standardized cached "
    "features, scored on the test split"
)
# The shortest body prefix `cell` resolves: 6 hex digits tell apart thousands of bodies.
MIN_PREFIX = 6

Key = tuple[str, int]  # (body sha, dataset id)


@dataclass
class _Body:
    """A body as one viewer sees it: the visible models whose current version carries it."""

    sha: str
    ref: VersionRef  # a version to run it from: one with the body stored apart if any has
    models: list[BenchmarkModel] = field(default_factory=list)
    architecture: str | None = None
    weights_source: str | None = None


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ranks(scores: dict[str, float]) -> dict[str, float]:
    """1 for the best accuracy; tied bodies share the mean of the ranks they span."""
    ordered = sorted(scores.items(), key=lambda item: -item[1])
    ranks: dict[str, float] = {}
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1][1] == ordered[start][1]:
            end += 1
        for body, _ in ordered[start : end + 1]:
            ranks[body] = (start + end) / 2 + 1
        start = end + 1
    return ranks


class BenchmarkManager:
    """Serves the bodies-by-datasets table and its cells, and queues the probes it lacks."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Held while missing cells are looked for and queued, so that each is queued once.
        self._queueing = threading.Lock()

    # --- reading ----------------------------------------------------------------------------

    @staticmethod
    def _bodies(session: Session, viewer: User) -> dict[str, _Body]:
        """The bodies of the viewer's visible models' current versions, by sha, in model order."""
        rows = session.exec(
            select(CatalogModel, ModelVersion)
            .join(
                ModelVersion,
                (col(ModelVersion.model_id) == col(CatalogModel.id))
                & (col(ModelVersion.version) == col(CatalogModel.version)),
            )
            .where(access.visible_to(viewer))
            .order_by(col(CatalogModel.id))
        ).all()
        owners = {user.id: user.name for user in session.exec(select(User)).all()}
        bodies: dict[str, _Body] = {}
        for model, version in rows:
            sha = version.body_ref or version.body_sha
            if sha is None:
                continue
            body = bodies.get(sha)
            if body is None:
                body = bodies[sha] = _Body(
                    sha, version_ref(model, version), [], model.architecture, model.weights_source
                )
            elif body.ref.body_ref is None and version.body_ref is not None:
                body.ref = version_ref(model, version)  # its body is stored apart: no model to split
            body.models.append(
                BenchmarkModel(
                    id=model.id,
                    name=model.name,
                    owner=owners.get(model.owner_id, "?"),
                    kind=version.kind,
                )
            )
        return bodies

    @staticmethod
    def _datasets(session: Session, names: list[str] | None) -> list[Dataset]:
        if not names:
            return list(session.exec(select(Dataset).order_by(col(Dataset.id))).all())
        chosen: dict[int, Dataset] = {}
        for name in names:
            dataset = DatasetManager.row(session, name)
            chosen.setdefault(dataset.id, dataset)  # type: ignore[arg-type]
        return list(chosen.values())

    @staticmethod
    def _probes(session: Session, shas: list[str], dataset_ids: list[int]) -> dict[Key, Probe]:
        found: dict[Key, Probe] = {}
        for chunk in _chunks(shas):
            for row in session.exec(
                select(Probe).where(col(Probe.body_sha).in_(chunk), col(Probe.dataset_id).in_(dataset_ids))
            ).all():
                found[(row.body_sha, row.dataset_id)] = row
        return found

    def table(self, viewer: User, datasets: list[str] | None = None) -> BenchmarkPublic:
        """The table at once: scored cells, and pending ones whose probes this queues (once).

        `datasets` (ids or names) picks the columns; every dataset by default.
        """
        with transaction(self.catalog.engine) as session:
            bodies = self._bodies(session, viewer)
            sets = self._datasets(session, datasets)
        return self._table(viewer, bodies, sets)

    def _table(self, viewer: User, bodies: dict[str, _Body], sets: list[Dataset]) -> BenchmarkPublic:
        ids = [int(dataset.id) for dataset in sets]  # type: ignore[arg-type]
        with transaction(self.catalog.engine) as session:
            probes = self._probes(session, list(bodies), ids)
        missing = [
            (sha, dataset_id) for sha in bodies for dataset_id in ids if (sha, dataset_id) not in probes
        ]
        jobs = self._queue(viewer, bodies, missing) if missing else {}
        names = {int(dataset.id): dataset.name for dataset in sets}  # type: ignore[arg-type]
        grid = {
            key: self._cell(key[1], names[key[1]], probes.get(key), jobs.get(key))
            for key in ((sha, dataset_id) for sha in bodies for dataset_id in ids)
        }
        for dataset_id in ids:
            column = {sha: grid[(sha, dataset_id)] for sha in bodies}
            scores = {
                sha: cell.accuracy
                for sha, cell in column.items()
                if cell.state == "scored" and cell.accuracy is not None
            }
            for sha, rank in _ranks(scores).items():
                column[sha].rank = rank
        rows = []
        for sha, body in bodies.items():
            cells = [grid[(sha, dataset_id)] for dataset_id in ids]
            ranked = [cell.rank for cell in cells if cell.rank is not None]
            rows.append(
                BenchmarkRow(
                    body=sha,
                    name=body.models[0].name,
                    architecture=body.architecture,
                    weights_source=body.weights_source,
                    models=body.models,
                    mean_rank=sum(ranked) / len(ranked) if ranked else None,
                    cells=cells,
                )
            )
        rows.sort(key=lambda row: (row.mean_rank is None, row.mean_rank or 0.0, row.name, row.body))
        pending = sum(cell.state == "pending" for row in rows for cell in row.cells)
        return BenchmarkPublic(datasets=[dataset.name for dataset in sets], rows=rows, pending=pending)

    @staticmethod
    def _cell(dataset_id: int, name: str, row: Probe | None, job: JobPublic | None) -> BenchmarkCell:
        """A scored cell from its probe row; else pending on its job, or failed with its reason."""
        if row is not None:
            return BenchmarkCell(
                dataset_id=dataset_id,
                dataset=name,
                state="scored",
                accuracy=row.accuracy if row.comparable else None,
                count=row.count,
                note=row.note,
            )
        assert job is not None
        if job.state in UNFINISHED:
            return BenchmarkCell(
                dataset_id=dataset_id, dataset=name, state="pending", job_id=job.id, note="being probed"
            )
        return BenchmarkCell(
            dataset_id=dataset_id, dataset=name, state="failed", job_id=job.id, note=job.reason or "failed"
        )

    def matrix(
        self,
        viewer: User,
        datasets: list[str] | None = None,
        *,
        wait: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> BenchmarkPublic:
        """The table; with `wait` (the command line's way) once no cell is pending,
        `progress(cells done, cells)` following."""
        table = self.table(viewer, datasets)
        if wait and table.pending:
            waiting = sorted(
                {
                    cell.job_id
                    for row in table.rows
                    for cell in row.cells
                    if cell.state == "pending" and cell.job_id is not None
                }
            )
            total = sum(len(row.cells) for row in table.rows)
            done = total - table.pending
            for job_id in waiting:
                if progress is not None:
                    progress(done, total)
                self.catalog.jobs.wait(job_id)
                done += 1
            table = self.table(viewer, datasets)
        if progress is not None:
            cells = sum(len(row.cells) for row in table.rows)
            progress(cells - table.pending, cells)
        return table

    def cell(self, viewer: User, body: str, dataset: int | str) -> BenchmarkCellPublic:
        """One cell with its per-class figures and its rank in the dataset's column; `body` is a
        visible body's sha or a prefix of it (MIN_PREFIX digits at least). The column's missing
        cells are queued as the table's are, and this one may be pending."""
        with transaction(self.catalog.engine) as session:
            bodies = self._bodies(session, viewer)
            sha = self._resolve(body, list(bodies))
            dataset_row = DatasetManager.row(session, dataset)
        column = self._table(viewer, bodies, [dataset_row])
        row = next(row for row in column.rows if row.body == sha)
        cell = row.cells[0]
        with transaction(self.catalog.engine) as session:
            probe_row = self._probes(session, [sha], [cell.dataset_id]).get((sha, cell.dataset_id))
        result = (probe_row.result or {}) if probe_row is not None else {}
        return BenchmarkCellPublic(
            body=sha,
            name=row.name,
            cell=cell,
            labels=list(dataset_row.labels),
            per_class=result.get("per_class", []),
            confusion=result.get("confusion", []),
            probe=PROBE,
        )

    @staticmethod
    def _resolve(body: str, shas: list[str]) -> str:
        wanted = body.strip().lower()
        if len(wanted) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
            raise Invalid(f"name a body by its sha256 or at least {MIN_PREFIX} of its first hex digits")
        found = [sha for sha in shas if sha.startswith(wanted)]
        if not found:
            raise NotFound(f"body {body} not found")
        if len(found) > 1:
            raise Invalid(f"body {body} is ambiguous: it starts {len(found)} bodies; give more digits")
        return found[0]

    # --- computing --------------------------------------------------------------------------

    def _queue(self, viewer: User, bodies: dict[str, _Body], missing: list[Key]) -> dict[Key, JobPublic]:
        """Each missing cell's probe job: the one queued or running for it, the last one when it
        failed (its reason is the cell's; a job lost on a restart is asked again), else a new one.
        Unfinished jobs that no runner of this process has, and cancelled ones, are asked again."""
        with self._queueing:
            latest: dict[Key, JobPublic] = {}
            with transaction(self.catalog.engine) as session:
                for job in session.exec(
                    select(Job).where(Job.kind == "probe", Job.state != "succeeded").order_by(col(Job.id))
                ).all():
                    asked = job.request or {}
                    latest[(str(asked.get("body_sha")), int(asked.get("dataset_id", -1)))] = job_public(job)
            jobs: dict[Key, JobPublic] = {}
            for key in missing:
                known = latest.get(key)
                # An unfinished job counts only while this process's runner has it: one queued by a
                # command that has exited would never end (models.submit_export does the same).
                if known is not None and (
                    (known.state in UNFINISHED and self.catalog.jobs.followed(known.id))
                    or (known.state == "failed" and known.reason != LOST)
                ):
                    jobs[key] = known
                    continue
                sha, dataset_id = key
                given = ProbeInput(
                    store_url=self.catalog.store.url, ref=bodies[sha].ref, body_sha=sha, dataset_id=dataset_id
                )
                request: dict[str, Any] = {"body_sha": sha, "dataset_id": dataset_id}
                jobs[key] = self.catalog.jobs.submit(
                    viewer, "probe", probe, given, key=new_key("probe"), request=request
                )
        return jobs

    def record(self, session: Session, job: Job, result: EvaluationResult, placed: list[str]) -> dict:
        """A probe's end: the cell, kept for good (a cell recorded meanwhile stays as it was)."""
        asked = job.request or {}
        sha, dataset_id = str(asked["body_sha"]), int(asked["dataset_id"])
        row = session.exec(select(Probe).where(Probe.body_sha == sha, Probe.dataset_id == dataset_id)).first()
        if row is None:
            row = Probe(
                body_sha=sha,
                dataset_id=dataset_id,
                comparable=result.comparable,
                accuracy=result.accuracy,
                count=result.count,
                note=result.note,
                result={"per_class": result.per_class, "confusion": result.confusion},
                requested_by_id=job.owner_id,
            )
            session.add(row)
            session.flush()
        return {"probe_id": row.id}
