"""The cluster factory: which Dask cluster the job runner uses, chosen by `c.JobRunner.cluster`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin

from headstart.kernels.errors import Invalid

if TYPE_CHECKING:
    from headstart.extension.jobs.dask_runner import DaskRunner

# Workers import TensorFlow for their first job; keep its C++ logs out of the service's log.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def make_cluster(runner: DaskRunner) -> tuple[Any, str | None]:
    """A (cluster, address) pair: the cluster the runner owns (None for one at `address`), and the
    address to connect to (None for a cluster object a Client takes itself)."""
    if runner.cluster == "address":
        if not runner.address:
            raise Invalid("c.JobRunner.cluster is 'address' but c.JobRunner.address is empty")
        return None, runner.address
    if runner.cluster == "kubernetes":
        from headstart.extension.jobs.kubernetes import (
            STORE_CLAIM,
            cluster_spec,
            gpu_worker_group,
            kube_cluster,
        )

        # Only the scheduler reads allowed-failures; every pod gets it so their env stays equal.
        env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(runner.retries)}
        secret = runner.kubernetes_store_secret or None
        claim = None if secret else STORE_CLAIM
        spec = cluster_spec(
            runner.kubernetes_name,
            image=runner.kubernetes_image,
            namespace=runner.kubernetes_namespace or None,
            cpu_workers=runner.kubernetes_workers,
            env=env,
            store_claim=claim,
            store_secret=secret,
        )
        group = gpu_worker_group(
            runner.kubernetes_name,
            image=runner.kubernetes_image,
            namespace=runner.kubernetes_namespace or None,
            workers=runner.kubernetes_gpu_workers,
            env=env,
            store_claim=claim,
            store_secret=secret,
        )
        return kube_cluster(spec, group), None
    from headstart.extension.jobs.local_cluster import LocalClusterProcess

    # In a process of its own, so that its scheduler and nannies leave the service's lock alone.
    cluster = LocalClusterProcess(
        {
            "n_workers": runner.n_workers,
            "threads_per_worker": runner.threads_per_worker,
            "processes": True,
            "memory_limit": runner.memory_limit,
            # The scheduler always serves HTTP (health, metrics, the dashboard when bokeh is
            # there): on loopback, on a free port, never on every interface at 8787.
            "dashboard_address": "127.0.0.1:0",
            "host": "127.0.0.1",
            "scheduler_kwargs": {"allowed_failures": runner.retries},
            "env": WORKER_ENV,
        }
    )
    return cluster, cluster.address


class NiceWorkers(WorkerPlugin):
    """Lowers each worker process's CPU priority when it starts, restarted workers included.

    On the service's own machine, trainings then take the cores the API leaves idle, rather than
    making the catalog's answers wait (the threads TensorFlow starts later inherit the priority).
    """

    name = "headstart-nice"

    def __init__(self, increment: int) -> None:
        self.increment = increment

    def setup(self, worker: Any) -> None:
        os.nice(self.increment)
