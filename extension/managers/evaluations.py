"""Evaluations and leaderboards: every score is computed by the platform and cached per version."""

from __future__ import annotations

import gzip
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func
from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import Revisions, transaction
from headstart.extension.catalog.tables import CatalogModel, Evaluation, Job, ModelVersion, User
from headstart.extension.managers.datasets import DatasetManager
from headstart.extension.managers.heap import settle
from headstart.extension.managers.jobs import job_public, new_key
from headstart.extension.managers.models import current_version, version_ref
from headstart.kernels.engine.scoring import EvaluationResult
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import (
    UNFINISHED,
    EvaluationPublic,
    JobPublic,
    LeaderboardRow,
    Split,
    check_choice,
)
from headstart.kernels.tasks.artifacts import VersionRef
from headstart.kernels.tasks.evaluation import EvaluateInput, PredictInput, evaluate_split, predict_files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from headstart.extension.manager import Catalog

# Rankings kept at once, one per dataset asked lately; one of 10,000 rows holds about 10 MB.
KEPT_RANKINGS = 8
# Viewers' boards kept per ranking, enough for the 100 users of bench/api_load.py --hub: with 32,
# their boards evicted each other and each request made one again. A board of 5,000 rows keeps about
# 100 kB (its rows' order, ranks and gzip), and 1.3 MB more once a client asks for it uncompressed.
KEPT_BOARDS = 128
# zlib's level for a board's gzip, once per board: 1 compressed a 1.2 MB board of 5,000 rows to 66 kB
# in 5 ms, 6 (zlib's default) to 58 kB in 11 ms.
GZIP_LEVEL = 1
_UNRANKED = b'{"rank":null'

# What a board's rows depend on: the models' revision, and its dataset's id, count of test scores
# and newest score's id.
Basis = tuple[int, int, int, int | None]
PENDING_NOTE = "being evaluated: its score comes with the next look"


# The most versions one scoring job takes: a board of thousands of variants of one body is scored in
# jobs of this many heads each, so that no one job runs for long.
GROUP = 64


def _by_body(refs: list[VersionRef]) -> Iterator[list[VersionRef]]:
    """The versions in groups that share a body (GROUP at most each); the rest one by one."""
    groups: dict[str, list[VersionRef]] = {}
    for ref in refs:
        body = ref.body_ref or ref.body_sha
        if ref.kind != "classifier" or body is None:
            yield [ref]
            continue
        groups.setdefault(body, []).append(ref)
    for group in groups.values():
        for start in range(0, len(group), GROUP):
            yield group[start : start + GROUP]


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    """`ids` in slices short enough for any database's limit on bound parameters."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _keep(kept: OrderedDict, key: Any, value: Any, most: int) -> None:
    """Keep `value` as the most recently used of at most `most`, letting the least recent go."""
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > most:
        kept.popitem(last=False)


def _in_order(path: Path) -> tuple[int, str]:
    """A prediction's files sit in folders numbered in the order they were sent."""
    number = path.parent.name
    return (int(number), path.name) if number.isdigit() else (-1, path.name)


@dataclass(slots=True)
class Standing:
    """One model version's place on a dataset's board, for whoever may see it.

    `rest` is the row's JSON after its rank (`,"model_id":...}`): a viewer's board numbers the rows
    it shows and joins them, without serializing a row again.
    """

    row: LeaderboardRow
    owner_id: int
    rest: bytes

    @property
    def unscored(self) -> bool:
        return self.row.pending


class Ranking:
    """Every model on one dataset's test split in board order, ranked once for all viewers.

    `basis` is what its rows depend on: the models' revision and its dataset's test scores (the
    dataset's id, how many and the newest; scores are only ever added, or deleted with their model
    or dataset). `seen` is the last set of revisions it was found current at, which lets a request
    use it without asking the database. `boards` are the viewers' boards made from it lately.
    """

    def __init__(
        self, seen: Revisions | None, basis: Basis | None, dataset_id: int, standings: list[Standing]
    ) -> None:
        self.seen = seen
        self.basis = basis
        self.dataset_id = dataset_id
        self.standings = standings
        # Unique to this ranking, across restarts too: it makes its boards' ETags.
        self.token = uuid.uuid4().hex
        self.boards: OrderedDict[int, Board] = OrderedDict()


class Board:
    """One viewer's leaderboard: the rows of a ranking it may see, numbered, and their JSON.

    `pending` holds the evaluation jobs of its unscored rows. `tag` names its content without
    hashing it: a board is made of one ranking, which never changes, for one viewer; its plain and
    gzip bodies have ETags of their own made from it.
    """

    def __init__(self, standings: list[Standing], pending: list[int], tag: str) -> None:
        self.standings = standings
        self.pending = pending
        self.etag, self.gzip_etag = f'"{tag}"', f'"{tag}-gzip"'
        ranks, rank = [], 0
        for standing in standings:
            if standing.row.comparable:
                rank += 1
            ranks.append(rank if standing.row.comparable else None)
        self.ranks = ranks

    @cached_property
    def json(self) -> bytes:
        """The plain JSON, made when a client first asks for it plain."""
        return self._joined()

    @cached_property
    def gzip(self) -> bytes:
        """The JSON compressed, for clients that accept gzip (httpx, browsers): the 1.3 MB board of
        bench/api_load.py is sent in 50 kB, which the service, the hub's proxy and the network then
        copy instead. Only the compressed bytes are kept."""
        return gzip.compress(self._joined(), compresslevel=GZIP_LEVEL, mtime=0)

    def _joined(self) -> bytes:
        rows = (
            (b'{"rank":null' if rank is None else b'{"rank":%d' % rank) + standing.rest
            for standing, rank in zip(self.standings, self.ranks, strict=True)
        )
        return b"[" + b",".join(rows) + b"]"

    @cached_property
    def rows(self) -> list[LeaderboardRow]:
        return [
            standing.row.model_copy(update={"rank": rank})
            for standing, rank in zip(self.standings, self.ranks, strict=True)
        ]


class EvaluationManager:
    """Scores model versions on dataset splits or image files, and ranks them per dataset."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Rankings per dataset as asked, least recently asked first, each with its viewers' boards.
        self._rankings: OrderedDict[str, Ranking] = OrderedDict()
        self._boards_lock = threading.Lock()
        self._ranking_lock = threading.Lock()
        # Held while a split's evaluation is looked for and queued, so that it is queued once.
        self._queueing = threading.Lock()

    def submit_split(
        self,
        viewer: User,
        model_id: int,
        dataset: int | str,
        split: str = "test",
        *,
        version: int | None = None,
        top_k: int = 3,
    ) -> tuple[EvaluationPublic | None, JobPublic | None]:
        """A visible version's cached score on a split, or the job that computes it (queued once).

        Answers (the evaluation, None) when the score is cached, else (None, the job): a new one, or
        the one already queued or running for the same version, dataset and split.
        """
        check_choice(split, Split, "split")
        with transaction(self.catalog.engine) as session:
            model = access.get_visible_model(session, model_id, viewer)
            wanted = (model_id, current_version(session, model, version).version)
            dataset_id: int = DatasetManager.row(session, dataset).id  # type: ignore[assignment]
            cached = self._cached(session, *wanted, dataset_id, split)
            if cached is not None:
                return EvaluationPublic(**cached.model_dump()), None
        return None, self._queue(viewer, dataset_id, split, [wanted], top_k=top_k)[wanted]

    @staticmethod
    def _cached(
        session: Session, model_id: int, version: int, dataset_id: int, split: str
    ) -> Evaluation | None:
        return session.exec(
            select(Evaluation).where(
                Evaluation.model_id == model_id,
                Evaluation.model_version == version,
                Evaluation.dataset_id == dataset_id,
                Evaluation.split == split,
            )
        ).first()

    def _queue(
        self,
        viewer: User,
        dataset_id: int,
        split: str,
        unscored: list[tuple[int, int]],
        *,
        top_k: int = 3,
    ) -> dict[tuple[int, int], JobPublic]:
        """The evaluation job of each unscored (model, version) on a split: the one queued or running
        for it in this process's runner, else a new one. A few queries for a whole board's rows, not a
        few for each.

        New ones go one job per body (`_by_body`): K variants of one body cost one pass of it over
        the split and K heads, however many workers the cluster has.
        """
        wanted = set(unscored)
        with self._queueing:
            with transaction(self.catalog.engine) as session:
                jobs: dict[tuple[int, int], JobPublic] = {}
                for job in session.exec(
                    select(Job).where(Job.kind == "evaluate", col(Job.state).in_(UNFINISHED))
                ).all():
                    # Only a job this process's runner has: one queued by a command that has exited
                    # would never end, and a board waiting on it would wait for good.
                    if job.id is None or not self.catalog.jobs.followed(job.id):
                        continue
                    asked = job.request or {}
                    if (asked.get("dataset_id"), asked.get("split")) == (dataset_id, split):
                        for model_id, version in asked.get("models", []):
                            jobs[(model_id, version)] = job_public(job)
                # Only the rows that no job covers yet need their versions read.
                unqueued = wanted - jobs.keys()
                refs = {}
                for chunk in _chunks(sorted({model_id for model_id, _ in unqueued})):
                    models = session.exec(select(CatalogModel).where(col(CatalogModel.id).in_(chunk))).all()
                    rows = {model.id: model for model in models}
                    for row in session.exec(
                        select(ModelVersion).where(col(ModelVersion.model_id).in_(chunk))
                    ):
                        if (row.model_id, row.version) in unqueued:
                            refs[(row.model_id, row.version)] = version_ref(rows[row.model_id], row)
            for group in _by_body([refs[key] for key in sorted(unqueued)]):
                target = {
                    "models": [[ref.model_id, ref.version] for ref in group],
                    "dataset_id": dataset_id,
                    "split": split,
                }
                given = EvaluateInput(
                    store_url=self.catalog.store.url,
                    refs=group,
                    dataset_id=dataset_id,
                    split=split,
                    top_k=top_k,
                )
                submitted = self.catalog.jobs.submit(
                    viewer, "evaluate", evaluate_split, given, key=new_key("evaluate"), request=target
                )
                for ref in group:
                    jobs[(ref.model_id, ref.version)] = submitted
        return {key: jobs[key] for key in wanted}

    def on_split(
        self,
        viewer: User,
        model_id: int,
        dataset: int | str,
        split: str = "test",
        *,
        version: int | None = None,
        top_k: int = 3,
    ) -> EvaluationPublic:
        """Score a visible model version on a split and wait for it; a cached score comes at once."""
        cached, job = self.submit_split(viewer, model_id, dataset, split, version=version, top_k=top_k)
        if cached is not None:
            return cached
        self.catalog.jobs.wait(job.id).result()  # type: ignore[union-attr]
        # The job may have scored other versions of the same body too; this one's score is cached now.
        cached, _ = self.submit_split(viewer, model_id, dataset, split, version=version, top_k=top_k)
        if cached is None:
            raise NotFound(f"model {model_id} was deleted while it was scored")
        return cached

    def get(self, evaluation_id: int) -> EvaluationPublic:
        with transaction(self.catalog.engine) as session:
            evaluation = session.get(Evaluation, evaluation_id)
            if evaluation is None:
                raise NotFound(f"evaluation {evaluation_id} not found")
            return EvaluationPublic(**evaluation.model_dump())

    def record(
        self, session: Session, job: Job, result: list[EvaluationResult] | None, placed: list[str]
    ) -> dict | None:
        """An evaluation's end: each version's score on the split, cached for it (a prediction records
        nothing). A version deleted while it was scored is skipped."""
        target = job.request or {}
        if "split" not in target:
            return None  # predictions go back to whoever asked, and are not kept
        dataset_id, split = target["dataset_id"], target["split"]
        made, cards = [], []
        for (model_id, version), scored in zip(target["models"], result or [], strict=True):
            if session.get(CatalogModel, model_id) is None:
                continue
            evaluation = self._cached(session, model_id, version, dataset_id, split)
            if evaluation is None:
                evaluation = Evaluation(
                    model_id=model_id,
                    model_version=version,
                    dataset_id=dataset_id,
                    split=split,
                    comparable=scored.comparable,
                    accuracy=scored.accuracy,
                    loss=scored.loss,
                    count=scored.count,
                    result=scored.to_dict(),
                    requested_by_id=job.owner_id,
                )
                session.add(evaluation)
                session.flush()
            made.append(evaluation.id)
            if split == "test":
                cards.append(model_id)
        return {"evaluation_ids": made, "cards": cards}

    def submit_predictions(
        self,
        viewer: User,
        model_id: int,
        images: Path,
        names: list[str],
        *,
        version: int | None = None,
        top_k: int = 3,
    ) -> JobPublic:
        """Queue the top-k predictions of a visible version for the files of a folder in the store's
        `tmp/` (named `names`, in order; the folder is removed at the job's end)."""
        files = sorted((path for path in Path(images).rglob("*") if path.is_file()), key=_in_order)
        if not files:
            raise Invalid("give at least one image file")
        store = self.catalog.store
        ref = self.catalog.models.ref(viewer, model_id, version)
        folder = store.share(Path(images))
        given = PredictInput(
            store_url=store.url,
            ref=ref,
            images=[store.key_of(path) for path in files],
            names=names,
            top_k=top_k,
            resize_policy=self.catalog.default_resize_policy,
            limits=self.catalog.ingest_limits,
            keep_loaded=self.catalog.kept_models,
        )
        request = {"uploads": [folder]}
        return self.catalog.jobs.submit(
            viewer,
            "evaluate",
            predict_files,
            given,
            key=new_key("evaluate"),
            request=request,
            affinity=ref.content,
        )

    def on_files(
        self,
        viewer: User,
        model_id: int,
        files: list[Path],
        *,
        version: int | None = None,
        top_k: int = 3,
        progress: Callable[[int], None] | None = None,
    ) -> dict:
        """Top-k predictions of a visible model version for each local image file, waited for."""
        if not files:
            raise Invalid("give at least one image file")
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise Invalid(f"no such image file: {', '.join(missing)}")
        folder = self.catalog.store.scratch("predict")
        try:
            for number, path in enumerate(files):
                target = folder / str(number) / Path(path).name
                target.parent.mkdir()
                shutil.copyfile(path, target)
            job = self.submit_predictions(
                viewer, model_id, folder, [Path(f).name for f in files], version=version, top_k=top_k
            )
        except BaseException:
            self.catalog.store.delete(self.catalog.store.key_of(folder))
            raise
        made = self.catalog.jobs.wait(job.id)
        result = made.result().to_dict()
        if progress is not None:
            progress(len(files))
        return result

    def leaderboard(
        self,
        viewer: User,
        dataset: int | str,
        *,
        wait: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[LeaderboardRow]:
        """Every model visible to `viewer`, scored on the dataset's test split and ranked.

        A model not scored yet is a pending row, and its evaluation is queued (once). With `wait`
        (the command line's way) the board comes once every row is scored, `progress(scored,
        models)` following; without it, at once. A board is kept while what it was ranked from
        stands; ranking thousands of models again for every request would not do.
        """
        board = self._board(viewer, dataset)
        if wait and board.pending:
            total = len(board.rows)
            for done, job_id in enumerate(board.pending, start=total - len(board.pending) + 1):
                self.catalog.jobs.wait(job_id)
                if progress is not None:
                    progress(done, total)
            board = self._board(viewer, dataset)
        if progress is not None:
            progress(len(board.rows), len(board.rows))
        return board.rows

    def board(self, viewer: User, dataset: int | str, *, gzipped: bool = False) -> Board:
        """The viewer's board at once (pending rows included), for the API. The body the caller
        will send (its gzip, or its plain JSON) is made here, once per kept board and off the loop
        (zlib lets go of the lock)."""
        board = self._board(viewer, dataset)
        if gzipped:
            board.gzip  # noqa: B018
        else:
            board.json  # noqa: B018
        return board

    def kept_board(self, viewer: User, dataset: int | str) -> Board | None:
        """The viewer's kept board if it is known current without asking the database."""
        with self._boards_lock:
            ranking = self._rankings.get(str(dataset))
            board = ranking.boards.get(int(viewer.id)) if ranking is not None else None  # type: ignore[arg-type]
        if ranking is None or ranking.seen is None or ranking.seen != self.catalog.revisions.peek():
            return None
        # A board with pending rows asks whether their evaluations ended.
        return board if board is not None and not board.pending else None

    def _board(self, viewer: User, dataset: int | str) -> Board:
        """The viewer's board, from the dataset's kept ranking; its unscored rows' evaluations queued."""
        ranking = self._ranking(dataset)
        viewer_id = int(viewer.id)  # type: ignore[arg-type]
        with self._boards_lock:
            board = ranking.boards.get(viewer_id)
        if board is not None and board.pending and self._any_ended(board.pending):
            board = None  # a pending row's evaluation failed (a score would have moved the basis)
        if board is None:
            # catalog.access rule 5, as access.visible_to says it in SQL.
            shown = [s for s in ranking.standings if s.row.public or s.owner_id == viewer_id]
            unscored = [(s.row.model_id, s.row.version) for s in shown if s.unscored]
            jobs = self._queue(viewer, ranking.dataset_id, "test", unscored) if unscored else {}
            board = Board(shown, [jobs[key].id for key in unscored], f"{ranking.token}-{viewer_id}")
        with self._boards_lock:
            _keep(ranking.boards, viewer_id, board, KEPT_BOARDS)
        return board

    def _ranking(self, dataset: int | str) -> Ranking:
        """The kept ranking while its basis stands, else one ranked again.

        A moved revision costs one small query for the basis: an ingest, or a score on another
        dataset or split, leaves the rows as they were, so the ranking is kept.
        """
        key = str(dataset)
        seen = self.catalog.revisions.read()
        with self._boards_lock:
            kept = self._rankings.get(key)
        if kept is not None and kept.seen == seen:
            return kept
        # One request ranks; the others that found the ranking stale wait for it instead of each
        # ranking the same rows at once.
        with self._ranking_lock:
            return self._rank_again(key, dataset)

    def _rank_again(self, key: str, dataset: int | str) -> Ranking:
        seen = self.catalog.revisions.read()
        with self._boards_lock:
            kept = self._rankings.get(key)
        if kept is not None and kept.seen == seen:
            return kept  # ranked while this request waited
        basis = self._basis(dataset, seen)
        if kept is not None and kept.basis == basis:
            kept.seen = seen
            return kept
        ranking = None
        for _ in range(3):
            standings = self._rank(basis[1])
            # The revisions were read before the rows: a change that landed while ranking moved
            # them, and then the basis says whether the rows missed it.
            after = self.catalog.revisions.read()
            now = basis if after == seen else self._basis(dataset, after)
            if now == basis:
                ranking = Ranking(after, basis, basis[1], standings)
                break
            # A ranking never stands for a basis it has not seen whole; one that keeps moving is
            # served, not kept.
            ranking = Ranking(None, None, basis[1], standings)
            seen, basis = after, now
        assert ranking is not None
        with self._boards_lock:
            _keep(self._rankings, key, ranking, KEPT_RANKINGS)
        settle()
        return ranking

    def _any_ended(self, job_ids: list[int]) -> bool:
        asked = job_ids[:500]  # enough to tell; a board's pending rows are queued together
        with transaction(self.catalog.engine) as session:
            unfinished = session.execute(
                columns(func.count(col(Job.id))).where(col(Job.id).in_(asked), col(Job.state).in_(UNFINISHED))
            ).scalar_one()
        return unfinished < len(asked)

    def _basis(self, dataset: int | str, revisions: Revisions) -> Basis:
        with transaction(self.catalog.engine) as session:
            dataset_id: int = DatasetManager.row(session, dataset).id  # type: ignore[assignment]
            count, newest = session.execute(
                columns(func.count(col(Evaluation.id)), func.max(col(Evaluation.id))).where(
                    col(Evaluation.dataset_id) == dataset_id, col(Evaluation.split) == "test"
                )
            ).one()
        return (revisions.models, dataset_id, count, newest)

    def _rank(self, dataset_id: int) -> list[Standing]:
        # Plain columns, not ORM rows: a ranking reads thousands of models and scores. Of a score's
        # `result` JSON (every prediction) only the note of an unranked row is read, by the database.
        with transaction(self.catalog.engine) as session:
            models = session.execute(
                columns(
                    col(CatalogModel.id),
                    col(CatalogModel.name),
                    col(CatalogModel.owner_id),
                    col(CatalogModel.version),
                    col(CatalogModel.public),
                ).order_by(col(CatalogModel.id))
            ).all()
            owners = {u.id: u.name for u in session.exec(select(User)).all()}
            note_of = col(Evaluation.result)["note"].as_string()
            cached = {
                (model_id, version): (comparable, accuracy, loss, count, "" if comparable else note or "")
                for model_id, version, comparable, accuracy, loss, count, note in session.execute(
                    columns(
                        col(Evaluation.model_id),
                        col(Evaluation.model_version),
                        col(Evaluation.comparable),
                        col(Evaluation.accuracy),
                        col(Evaluation.loss),
                        col(Evaluation.count),
                        case((col(Evaluation.comparable).is_(False), note_of)),
                    ).where(col(Evaluation.dataset_id) == dataset_id, col(Evaluation.split) == "test")
                ).all()
            }
        standings: list[Standing] = []
        for model_id, name, owner_id, version, public in models:
            # Not scored yet: its evaluation is queued (once) by whoever's board shows it, and the row
            # says it is pending.
            score = cached.get((model_id, version), (False, None, None, 0, PENDING_NOTE))
            comparable, accuracy, loss, count, note = score
            row = LeaderboardRow(
                rank=None,
                model_id=model_id,
                model_name=name,
                owner=owners.get(owner_id, "?"),
                version=version,
                public=public,
                comparable=comparable,
                accuracy=accuracy,
                loss=loss,
                count=count,
                note=note,
                pending=(model_id, version) not in cached,
            )
            standings.append(Standing(row, owner_id, row.model_dump_json().encode()[len(_UNRANKED) :]))
        standings.sort(
            key=lambda s: (
                not s.row.comparable,
                -(s.row.accuracy if s.row.accuracy is not None else -1.0),
                s.row.loss if s.row.loss is not None else float("inf"),
                s.row.model_id,
            )
        )
        return standings
