"""The local cluster in a process of its own: a Dask LocalCluster of worker processes, apart from the service.

The service keeps only a Dask client. The scheduler and the nannies (their heartbeats, memory
checks and every task's bookkeeping) then take turns at this process's interpreter lock instead of
the one that answers API requests: in the service's process they took 16% of its samples under
load (docs/benchmarks.md, "Through the hub").

The process lives while its standard input is open. The service holds the other end, so the cluster
ends with the service however the service ends, a kill included: the pipe closes and this process
closes its cluster. Run by `LocalClusterProcess`; `python -m headstart.extension.jobs.local_cluster
'<LocalCluster keywords as JSON>'` prints one JSON line, `{"address": ...}` or `{"error": ...}`; what
it or its workers print later goes to standard error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

from headstart.kernels.errors import Invalid

# The cluster's scheduler is up in a few seconds; this bounds a start that hangs.
START_SECONDS = 120.0
# A cluster closing its workers on a closed pipe; past this it is killed.
CLOSE_SECONDS = 30.0


class LocalClusterProcess:
    """A LocalCluster running in a child process: its scheduler's `address`, and `close()`."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        answer = self._first_line()
        if "address" not in answer:
            self.close()
            raise Invalid(f"the local Dask cluster did not start: {answer.get('error', 'no answer')}")
        self.address: str = answer["address"]

    def _first_line(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_SECONDS)
        if not lines:
            return {"error": f"no address within {START_SECONDS:.0f} s"}
        return json.loads(lines[0]) if lines[0] else {"error": "it exited before it said its address"}

    def close(self) -> None:
        """Close the cluster (its workers first), killing it if it takes over CLOSE_SECONDS."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def main(options: dict[str, Any]) -> None:
    # The answer goes on a copy of the pipe; everything else written to standard output, by this
    # process or by the workers it starts (a task's print), goes to standard error, for nothing
    # reads the pipe after the answer, and a full pipe would block the writer.
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from distributed import LocalCluster

    try:
        cluster = LocalCluster(**options)
    except Exception as error:  # said to the service, which raises it
        answer.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
        answer.close()
        return
    try:
        answer.write(json.dumps({"address": cluster.scheduler_address}) + "\n")
        answer.close()
        # Until the service closes its end, or ends.
        sys.stdin.buffer.read()
    except KeyboardInterrupt:
        pass  # a terminal's Ctrl-C reaches the whole process group
    finally:
        cluster.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
