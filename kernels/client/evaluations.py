"""`HeadstartClient.evaluations`: the remote twin of the catalog's EvaluationManager."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from headstart.kernels.client.connection import Connection, parse, parse_list, query
from headstart.kernels.client.jobs import JobProgress, RemoteJobs, answered_job
from headstart.kernels.errors import HeadstartError, Invalid
from headstart.kernels.schemas import EvaluationPublic, EvaluationRequest, LeaderboardRow, build


class RemoteEvaluations:
    """Scores models of a remote catalog on dataset splits or image files, and fetches leaderboards."""

    def __init__(self, connection: Connection, jobs: RemoteJobs) -> None:
        self._connection = connection
        self._jobs = jobs

    def on_split(
        self,
        model_id: int,
        dataset: int | str,
        split: str = "test",
        *,
        version: int | None = None,
        top_k: int = 3,
        progress: JobProgress | None = None,
    ) -> EvaluationPublic:
        """Score a model version on a dataset split; the catalog returns a cached score as it is.

        An uncached score is computed as a job (queued once, however many ask), which this waits
        for, `progress(phase, done, total)` following it; asked again, the catalog then answers the
        score it cached.
        """
        body = build(
            EvaluationRequest, model_id=model_id, dataset=dataset, split=split, version=version, top_k=top_k
        ).model_dump(mode="json")
        response = self._connection.request("POST", "headstart/evaluations", json=body)
        if response.status_code == 202:
            self._jobs.follow(answered_job(response), progress=progress)
            response = self._connection.request("POST", "headstart/evaluations", json=body)
        return parse(response, EvaluationPublic)

    def on_files(
        self,
        model_id: int,
        files: list[Path],
        *,
        version: int | None = None,
        top_k: int = 3,
        progress: Callable[[int], None] | None = None,
    ) -> dict:
        """Top-k predictions of a model version for each image file.

        The images are streamed in one multipart request; `progress(images done)` comes once, with
        the answer, since the service scores them all before it replies.
        """
        if not files:
            raise Invalid("give at least one image file")
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise Invalid(f"no such image file: {', '.join(missing)}")
        with ExitStack() as opened:
            # httpx reads each open file in chunks as it sends, so no image is held whole.
            parts = [
                (
                    "images",
                    (
                        Path(f).name,
                        opened.enter_context(Path(f).open("rb")),
                        mimetypes.guess_type(Path(f).name)[0] or "application/octet-stream",
                    ),
                )
                for f in files
            ]
            response = self._connection.request(
                "POST",
                f"headstart/models/{int(model_id)}/predictions",
                params=query(top_k=top_k, version=version),
                files=parts,
                slow=True,
            )
        try:
            result = response.json()
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise HeadstartError(f"POST {response.request.url} answered something that is not a result")
        if progress is not None:
            progress(len(files))
        return result

    def leaderboard(
        self,
        dataset: int | str,
        *,
        wait: bool = True,
        progress: Callable[[int, int], None] | None = None,
        poll: float = 0.5,
    ) -> list[LeaderboardRow]:
        """Every model you may see, scored on the dataset's test split and ranked.

        The service answers at once: a model not scored yet is a pending row, its evaluation queued.
        With `wait` this asks again until no row is pending, `progress(scored, models)` following.
        """
        path = f"headstart/leaderboards/{quote(str(dataset), safe='')}"
        while True:
            rows = parse_list(self._connection.request("GET", path), LeaderboardRow)
            waiting = sum(row.pending for row in rows)
            if progress is not None:
                progress(len(rows) - waiting, len(rows))
            if not wait or not waiting:
                return rows
            time.sleep(poll)
