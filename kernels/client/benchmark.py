"""`HeadstartClient.benchmark`: the remote twin of the catalog's BenchmarkManager.

The transfer benchmark is every body you may see by every dataset, each cell the standard linear
probe's test accuracy. The service answers at once; cells it has not computed are pending while
their probe jobs run, and `matrix` asks again until none is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

from headstart.kernels.client.connection import Connection, parse, query
from headstart.kernels.schemas import BenchmarkCellPublic, BenchmarkPublic


class RemoteBenchmark:
    """Reads the transfer benchmark of a remote catalog."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def table(self, datasets: Sequence[int | str] | None = None) -> BenchmarkPublic:
        """The table at once, pending cells included (their probes are queued)."""
        names = [str(dataset) for dataset in datasets] if datasets else None
        response = self._connection.request("GET", "headstart/benchmark", params=query(datasets=names))
        return parse(response, BenchmarkPublic)

    def matrix(
        self,
        datasets: Sequence[int | str] | None = None,
        *,
        wait: bool = True,
        progress: Callable[[int, int], None] | None = None,
        poll: float = 0.5,
    ) -> BenchmarkPublic:
        """Every body you may see by `datasets` (every dataset by default), best mean rank first.

        With `wait` this asks again until no cell is pending, `progress(cells done, cells)` following.
        """
        while True:
            table = self.table(datasets)
            cells = sum(len(row.cells) for row in table.rows)
            if progress is not None:
                progress(cells - table.pending, cells)
            if not wait or not table.pending:
                return table
            time.sleep(poll)

    def cell(self, body: str, dataset: int | str) -> BenchmarkCellPublic:
        """One cell with its per-class figures; `body` is a sha256 or 6 or more of its first digits."""
        path = f"headstart/benchmark/{quote(body, safe='')}/{quote(str(dataset), safe='')}"
        return parse(self._connection.request("GET", path), BenchmarkCellPublic)
