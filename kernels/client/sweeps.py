"""`HeadstartClient.sweeps`: the remote twin of the catalog's SweepManager.

A sweep trains many heads of one model in one job on the service; `start` begins one and follows
its job, and each of its runs is a training, decided with `trainings.decide`.
"""

from __future__ import annotations

import builtins
import contextlib

from headstart.kernels.client.connection import Connection, parse, parse_list
from headstart.kernels.client.jobs import JobProgress, RemoteJobs
from headstart.kernels.errors import Cancelled
from headstart.kernels.schemas import SweepCreate, SweepGrid, SweepPublic, TrainingConfig, build


class RemoteSweeps:
    """Starts and follows sweeps in a remote catalog."""

    def __init__(self, connection: Connection, jobs: RemoteJobs) -> None:
        self._connection = connection
        self._jobs = jobs

    def begin(
        self,
        model_id: int,
        dataset: int | str,
        grid: SweepGrid | dict,
        *,
        draws: int | None = None,
        config: TrainingConfig | None = None,
    ) -> SweepPublic:
        """Start a sweep and return it at once, its job queued and one run per head.

        `grid` gives lists of learning_rate, epochs, optimizer, batch_size and label_smoothing;
        every combination trains, or `draws` of them picked at random. `config` is what the heads
        share besides the grid.
        """
        body = build(
            SweepCreate,
            model_id=model_id,
            dataset=dataset,
            grid=grid,
            draws=draws,
            config=config or TrainingConfig(),
        )
        response = self._connection.request("POST", "headstart/sweeps", json=body.model_dump(mode="json"))
        return parse(response, SweepPublic)

    def start(
        self,
        model_id: int,
        dataset: int | str,
        grid: SweepGrid | dict,
        *,
        draws: int | None = None,
        config: TrainingConfig | None = None,
        progress: JobProgress | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> SweepPublic:
        """Run a sweep and wait for its candidates, like the local catalog; runs come best first.

        `progress(phase, done, total)` follows its job: the body's feature pass when the cache
        misses, then the epochs of all runs. A failed sweep raises its error; a cancelled one is
        returned. `timeout` (seconds) stops the waiting, not the sweep.
        """
        begun = self.begin(model_id, dataset, grid, draws=draws, config=config)
        with contextlib.suppress(Cancelled):
            self._jobs.follow(begun.job, progress=progress, poll=poll, timeout=timeout)  # type: ignore[arg-type]
        return self.get(begun.id)

    def get(self, sweep_id: int) -> SweepPublic:
        """One of your sweeps, with its job and its runs, best val accuracy first."""
        return parse(self._connection.request("GET", f"headstart/sweeps/{int(sweep_id)}"), SweepPublic)

    def list(self) -> builtins.list[SweepPublic]:
        """Your sweeps, oldest first."""
        return parse_list(self._connection.request("GET", "headstart/sweeps"), SweepPublic)
