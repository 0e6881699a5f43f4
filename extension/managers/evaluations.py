"""Evaluations and leaderboards: every score is computed by the platform and cached per version."""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter
from sqlalchemy import select as columns
from sqlmodel import col, select

from headstart.extension.catalog import access
from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import CatalogModel, Evaluation, User
from headstart.extension.jobs.evaluation import evaluate_files, evaluate_split
from headstart.extension.managers.datasets import DatasetManager
from headstart.extension.managers.models import current_version, version_ref
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import EvaluationPublic, LeaderboardRow, Split, check_choice

if TYPE_CHECKING:
    from collections.abc import Callable

    from headstart.extension.manager import Catalog

# Boards kept at once: each (dataset, viewer) pair asked lately. One of 5,000 rows is about 6 MB.
KEPT_BOARDS = 32
NEVER = -1  # the revision of a board that no revision matches

_ROWS = TypeAdapter(list[LeaderboardRow])


class Board:
    """A ranked leaderboard, the catalog revision it was ranked at, and its JSON made once."""

    def __init__(self, revision: int, rows: list[LeaderboardRow]) -> None:
        self.revision = revision
        self.rows = rows

    @cached_property
    def json(self) -> bytes:
        return _ROWS.dump_json(self.rows)


class EvaluationManager:
    """Scores model versions on dataset splits or image files, and ranks them per dataset."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Ranked boards per (dataset as asked, viewer), least recently asked first.
        self._boards: OrderedDict[tuple[str, int], Board] = OrderedDict()
        self._boards_lock = threading.Lock()

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
        """Score a visible model version on a split; a cached score is returned as it is."""
        check_choice(split, Split, "split")
        with transaction(self.catalog.engine) as session:
            model = access.get_visible_model(session, model_id, viewer)
            row = current_version(session, model, version)
            ref = version_ref(model, row)
            dataset_id: int = DatasetManager.row(session, dataset).id  # type: ignore[assignment]
            cached = session.exec(
                select(Evaluation).where(
                    Evaluation.model_id == model_id,
                    Evaluation.model_version == ref.version,
                    Evaluation.dataset_id == dataset_id,
                    Evaluation.split == split,
                )
            ).first()
            if cached is not None:
                return EvaluationPublic(**cached.model_dump())
        result = self.catalog.jobs.execute(
            viewer,
            "evaluate",
            evaluate_split,
            self.catalog.store.url,
            ref,
            dataset_id,
            split,
            top_k=top_k,
            phase="evaluate",
        )
        with transaction(self.catalog.engine) as session:
            evaluation = Evaluation(
                model_id=model_id,
                model_version=ref.version,
                dataset_id=dataset_id,
                split=split,
                comparable=result["comparable"],
                accuracy=result["accuracy"],
                loss=result["loss"],
                count=result["count"],
                result=result,
                requested_by_id=viewer.id,  # type: ignore[arg-type]
            )
            session.add(evaluation)
            session.flush()
            scored = EvaluationPublic(**evaluation.model_dump())
        if split == "test":
            self.catalog.refresh_card(model_id)
        return scored

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
        """Top-k predictions of a visible model version for each image file."""
        if not files:
            raise Invalid("give at least one image file")
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise Invalid(f"no such image file: {', '.join(missing)}")
        ref = self.catalog.models.ref(viewer, model_id, version)
        return self.catalog.jobs.execute(
            viewer,
            "evaluate",
            evaluate_files,
            self.catalog.store.url,
            ref,
            [Path(f) for f in files],
            self.catalog.ingest_limits,
            top_k=top_k,
            resize_policy=self.catalog.default_resize_policy,
            # A callback reaches a task only in this process; on the cluster the job reports.
            progress=progress if self.catalog.runner is None else None,
        )

    def leaderboard(
        self, viewer: User, dataset: int | str, *, progress: Callable[[int, int], None] | None = None
    ) -> list[LeaderboardRow]:
        """Every model visible to `viewer`, scored on the dataset's test split and ranked.

        A board is kept until the catalog's revision moves; ranking thousands of models again for
        every request would not do.
        """
        return self._board(viewer, dataset, progress).rows

    def leaderboard_json(self, viewer: User, dataset: int | str) -> bytes:
        """The leaderboard as the API's JSON, serialized once per kept board."""
        return self._board(viewer, dataset, None).json

    def kept_leaderboard_json(self, viewer: User, dataset: int | str) -> bytes | None:
        """The kept board's JSON if it is known current without asking the database, else None."""
        with self._boards_lock:
            kept = self._boards.get((str(dataset), int(viewer.id)))  # type: ignore[arg-type]
        if kept is not None and kept.revision == self.catalog.revisions.peek():
            return kept.json
        return None

    def _board(self, viewer: User, dataset: int | str, progress: Callable[[int, int], None] | None) -> Board:
        key = (str(dataset), int(viewer.id))  # type: ignore[arg-type]
        revision = self.catalog.revisions.read()
        with self._boards_lock:
            kept = self._boards.get(key)
        if kept is not None and kept.revision == revision:
            if progress is not None:
                progress(len(kept.rows), len(kept.rows))
            return kept
        with transaction(self.catalog.engine) as session:
            dataset_id: int = DatasetManager.row(session, dataset).id  # type: ignore[assignment]
        board = Board(NEVER, [])
        for _ in range(3):
            rows = self._rank(viewer, dataset_id, progress)
            after = self.catalog.revisions.read()
            if after == revision:
                board = Board(revision, rows)
                break
            # Ranking scored models, or another change landed: rank again from the new revision
            # (a second pass finds every score cached). A board never stands for a revision it
            # has not seen whole; one that keeps moving is served, not kept.
            board, revision = Board(NEVER, rows), after
        with self._boards_lock:
            self._boards[key] = board
            self._boards.move_to_end(key)
            while len(self._boards) > KEPT_BOARDS:
                self._boards.popitem(last=False)
        return board

    def _rank(
        self, viewer: User, dataset_id: int, progress: Callable[[int, int], None] | None
    ) -> list[LeaderboardRow]:
        # Plain columns, not ORM rows: a board reads thousands of models and scores, and the
        # scores' `result` JSON (every prediction) is needed only for the notes of unranked rows.
        with transaction(self.catalog.engine) as session:
            models = session.execute(
                columns(
                    col(CatalogModel.id),
                    col(CatalogModel.name),
                    col(CatalogModel.owner_id),
                    col(CatalogModel.version),
                    col(CatalogModel.public),
                )
                .where(access.visible_to(viewer))
                .order_by(col(CatalogModel.id))
            ).all()
            owners = {u.id: u.name for u in session.exec(select(User)).all()}
            on_test = (col(Evaluation.dataset_id) == dataset_id, col(Evaluation.split) == "test")
            cached = {
                (model_id, version): (comparable, accuracy, loss, count, "")
                for model_id, version, comparable, accuracy, loss, count in session.execute(
                    columns(
                        col(Evaluation.model_id),
                        col(Evaluation.model_version),
                        col(Evaluation.comparable),
                        col(Evaluation.accuracy),
                        col(Evaluation.loss),
                        col(Evaluation.count),
                    ).where(*on_test)
                ).all()
            }
            for model_id, version, result in session.exec(
                select(Evaluation.model_id, Evaluation.model_version, Evaluation.result).where(
                    *on_test, col(Evaluation.comparable).is_(False)
                )
            ).all():
                cached[(model_id, version)] = (
                    *cached[(model_id, version)][:4],
                    (result or {}).get("note", ""),
                )
        rows: list[LeaderboardRow] = []
        for done, (model_id, name, owner_id, version, public) in enumerate(models):
            score = cached.get((model_id, version))
            if score is None:
                scored = self.on_split(viewer, model_id, dataset_id, "test", version=version)
                note = (scored.result or {}).get("note", "")
                score = (scored.comparable, scored.accuracy, scored.loss, scored.count, note)
            comparable, accuracy, loss, count, note = score
            rows.append(
                LeaderboardRow(
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
                )
            )
            if progress is not None:
                progress(done + 1, len(models))
        ranked = sorted(
            rows,
            key=lambda r: (
                not r.comparable,
                -(r.accuracy if r.accuracy is not None else -1.0),
                r.loss if r.loss is not None else float("inf"),
                r.model_id,
            ),
        )
        for position, row in enumerate(ranked, start=1):
            row.rank = position if row.comparable else None
        return ranked
