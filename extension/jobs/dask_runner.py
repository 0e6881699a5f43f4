"""`DaskRunner`: the service's Dask client, the cluster it runs jobs on, and its jobs' futures.

Jobs are the tasks of `headstart.kernels.tasks`, run on a worker by `run_task` under their job's key.
Its config is `c.JobRunner.*` (the interface's section, which this class reads as its own). A
submitted future is published on the scheduler under that key, so a restarted service finds it
again (`attach`) and the scheduler keeps the task while no client holds it. The runner touches no
database: what its jobs report goes to the callbacks given, on one thread, in order.

A job that asks for resources (a training's `GPU=1`) is checked against the workers the scheduler
knows: when none offers them and none can join, it is refused at once with the reason; on a cluster
that adds workers, it waits with that said in its phase, up to `resource_wait` seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode, default

from headstart.extension.jobs.runner import (
    DoneSink,
    EventSink,
    JobRunner,
    Resources,
    Task,
    resource_words,
    waiting_report,
)
from headstart.kernels.errors import Cancelled, Invalid
from headstart.kernels.tasks.reporting import run_task, stop_event_name, topic

# Affinities remembered at once (JobRunner.submit): far more than workers keep models loaded.
KEPT_PLACES = 1024

# How often a job waiting for a worker with its resources asks the scheduler whether one joined.
WATCH_SECONDS = 1.0
# Each cluster in the words of a reason: "no worker of the local cluster offers GPU=1".
CLUSTER_WORDS = {"local": "local cluster", "address": "cluster", "kubernetes": "kubernetes cluster"}


def offers(worker: Mapping[str, Any], resources: Resources) -> bool:
    """Whether one worker (as the scheduler describes it) has every resource in the amount asked."""
    has = worker.get("resources") or {}
    return all(has.get(name, 0) >= amount for name, amount in resources.items())


class DaskRunner(JobRunner):
    """Submits jobs to a Dask cluster chosen by config, and reports their events and ends."""

    cluster = CaselessStrEnum(
        ["local", "address", "kubernetes"],
        default_value="local",
        config=True,
        help="Where jobs run: `local` starts a LocalCluster of worker processes on this machine, its "
        "scheduler in a process of its own that ends with the service; "
        "`address` connects to a running scheduler (`address`); `kubernetes` starts a dask-kubernetes "
        "operator cluster with a CPU worker group and a GPU worker group (see hub_config/k8s/).",
    )
    address = Unicode(
        "", config=True, help="The scheduler's address when cluster='address', e.g. tcp://10.0.0.5:8786."
    )
    n_workers = Int(
        config=True,
        help="Worker processes of the local cluster; defaults to one per core, at most 4.",
    )
    threads_per_worker = Int(
        1, config=True, help="Threads per local worker: one job at a time per worker process."
    )
    memory_limit = Unicode(
        "auto", config=True, help="Memory limit per local worker, as Dask reads it ('auto', '4GiB')."
    )
    retries = Int(
        2,
        config=True,
        help="How many more times a job is run when the worker running it dies, before it fails. "
        "It sets the scheduler's allowed-failures on the clusters the service starts (local and "
        "kubernetes); a scheduler given by `address` keeps its own setting.",
    )
    worker_nice = Int(
        19,
        config=True,
        help="How much lower the CPU priority of the local cluster's workers is than the service's "
        "(a nice increment, 0 to 19; the lowest by default): jobs use the cores the API leaves idle.",
    )
    resource_wait = Float(
        600.0,
        min=0,
        config=True,
        help="Seconds that a job whose resources (a training's GPU=1) no worker offers yet waits for "
        "a worker that offers them to join, on a cluster that adds workers: the kubernetes cluster's "
        "GPU group (a GPU node may take minutes to come up), or a scheduler at `address` with "
        "`address_scales_up`. Its job's phase says what it waits for; past this time it fails with the "
        "reason. On any other cluster such a job is refused at once.",
    )
    address_scales_up = Bool(
        False,
        config=True,
        help="Whether workers join the scheduler at `address` on demand (an autoscaler, or an operator "
        "who starts them): a job whose resources no worker offers yet then waits for one, up to "
        "`resource_wait` seconds, instead of being refused at once.",
    )
    kubernetes_name = Unicode("headstart", config=True, help="Name of the DaskCluster resource.")
    kubernetes_namespace = Unicode(
        "", config=True, help="Namespace of the DaskCluster; empty means the pod's own namespace."
    )
    kubernetes_image = Unicode(config=True, help="Worker and scheduler image of the Kubernetes cluster.")
    kubernetes_workers = Int(1, config=True, help="CPU workers of the Kubernetes cluster's default group.")
    kubernetes_gpu_workers = Int(
        1, config=True, help="Workers of the GPU group, each with one `nvidia.com/gpu` and `GPU=1`."
    )
    kubernetes_store_secret = Unicode(
        "",
        config=True,
        help="With an object store (c.Catalog.store_url = s3://...): the Secret whose keys the workers "
        "get as their environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL for an "
        "S3-compatible server); they then mount no shared claim and cache what they read in an "
        "emptyDir. Empty: the workers mount the ReadWriteMany claim `headstart-store`.",
    )

    @default("n_workers")
    def _default_n_workers(self) -> int:
        return max(1, min(os.cpu_count() or 1, 4))

    @default("kubernetes_image")
    def _default_kubernetes_image(self) -> str:
        from headstart.extension.jobs.kubernetes import WORKER_IMAGE

        return WORKER_IMAGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        # Events and ends of every job are handled on this one thread, in the order they came.
        self._ordered = ThreadPoolExecutor(1, thread_name_prefix="headstart-jobs")
        self._futures: dict[str, Any] = {}
        self._started: set[str] = set()
        # Jobs given up on while they waited for a worker with their resources: key -> the reason.
        self._refused: dict[str, str] = {}
        # Where the last job of each affinity started: affinity -> worker address, newest last.
        self._placed: OrderedDict[str, str] = OrderedDict()
        self._closed = False

    # --- the cluster ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Dask client, with its cluster started on first use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            if self._client is None:
                from distributed import Client

                from headstart.extension.jobs.cluster import make_cluster

                self._cluster, address = make_cluster(self)
                self._client = Client(address if address is not None else self._cluster)
                if self.cluster == "local" and self.worker_nice > 0:
                    from headstart.extension.jobs.cluster import NiceWorkers

                    self._client.register_plugin(NiceWorkers(min(self.worker_nice, 19)))
                address = self._client.scheduler.address
                self.log.info("headstart jobs: %s cluster at %s", self.cluster, address)
            return self._client

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def owns_cluster(self) -> bool:
        """Whether the cluster lives and dies with this runner (its jobs cannot outlive a restart).

        A Kubernetes cluster is left running when the service stops, so a restart re-attaches.
        """
        return self.cluster == "local"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        self._ordered.shutdown(wait=True, cancel_futures=False)

    # --- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        key: str,
        task: Task,
        given: Any,
        *,
        on_event: EventSink,
        on_done: DoneSink,
        resources: Resources | None = None,
        affinity: str | None = None,
    ) -> None:
        """Run `task(given, reporter)` on a worker as the Dask task `key` (see JobRunner.submit).

        A job with an `affinity` goes to the worker where the last one started; when the cluster no
        longer has that worker it runs where Dask puts it (a loose restriction).
        """
        client = self.client
        waiting = self.require(resources)
        self._subscribe(key, on_event, affinity)
        if waiting is not None:
            # Queued ahead of the job's own reports, so its start always comes after this.
            self._ordered.submit(self._handle, on_event, waiting_report(waiting))
        asked = dict(resources) if resources else None
        held = self._placed.get(affinity) if affinity is not None else None
        # A loose restriction: a worker that left, or is not running, leaves the choice to Dask.
        workers = [held] if held is not None else None
        future = client.submit(
            run_task,
            key,
            task,
            given,
            key=key,
            resources=asked,
            workers=workers,
            allow_other_workers=workers is not None,
            pure=False,
            retries=0,
        )
        client.publish_dataset(future, name=key, override=True)
        self._follow(key, future, on_done)
        if waiting is not None:
            self._watch(key, future, resources or {})

    def attach(
        self, key: str, *, on_event: EventSink, on_done: DoneSink, resources: Resources | None = None
    ) -> bool:
        """Follow a job submitted before a restart; False when the cluster no longer has it.

        `resources` are what the job asked for: it is checked again, as a new job would be.
        """
        if self.owns_cluster:
            return False  # the cluster this job ran on stopped with the service
        client = self.client
        future = client.get_dataset(key, default=None)
        if future is None:
            return False
        self._subscribe(key, on_event)
        try:
            waiting = self.require(resources)
        except Invalid as refusal:
            waiting = None
            self._refuse(key, future, str(refusal))
        if waiting is not None:
            self._ordered.submit(self._handle, on_event, waiting_report(waiting))
        self._follow(key, future, on_done)
        if waiting is not None:
            self._watch(key, future, resources or {})
        return True

    # --- resources --------------------------------------------------------------------------

    def offered(self, resources: Resources) -> bool:
        """Whether a worker of the cluster offers all of `resources` now, as its scheduler says."""
        workers = self.client.scheduler_info()["workers"].values()
        return any(offers(worker, resources) for worker in workers)

    def can_add(self, resources: Resources) -> bool:
        """Whether workers offering `resources` may still join the cluster (so a job may wait)."""
        if self.cluster == "kubernetes":
            # The GPU group's pods each offer GPU=1, once a GPU node takes them.
            return self.kubernetes_gpu_workers > 0 and all(
                name == "GPU" and amount <= 1 for name, amount in resources.items()
            )
        return self.cluster == "address" and self.address_scales_up

    def require(self, resources: Resources | None) -> str | None:
        """Check that a job asking for `resources` can run here.

        None when a worker offers them now (or nothing is asked); the phase to show while the
        cluster adds a worker that offers them; Invalid with the reason when no worker ever will.
        """
        if not resources or self.offered(resources):
            return None
        wanted = resource_words(resources)
        if self.can_add(resources):
            return f"waiting for a worker with {wanted}"
        if self.cluster == "kubernetes":
            hint = "set c.JobRunner.kubernetes_gpu_workers to 1 or more"
        else:
            hint = f"start one with `dask worker {self.client.scheduler.address} --resources {wanted}`"
        words = CLUSTER_WORDS[self.cluster]
        raise Invalid(f"no worker of the {words} offers {wanted}; {hint}, or train on the CPU")

    def _watch(self, key: str, future: Any, resources: Resources) -> None:
        """Give up on a waiting job once no worker has offered its resources for `resource_wait` s."""

        def watch() -> None:
            offered_at = time.monotonic()
            while not self._closed and not future.done() and key not in self._started:
                try:
                    if self.offered(resources):
                        offered_at = time.monotonic()  # one is there: the job waits its turn
                except Exception:
                    if self._closed:
                        return
                    self.log.warning("headstart jobs: could not ask the scheduler about %s", key)
                if time.monotonic() - offered_at >= self.resource_wait:
                    wanted = resource_words(resources)
                    self._refuse(
                        key,
                        future,
                        f"no worker with {wanted} joined the {CLUSTER_WORDS[self.cluster]} within "
                        f"{self.resource_wait:g} s; train on the CPU, or ask the operator for one",
                    )
                    return
                time.sleep(WATCH_SECONDS)

        threading.Thread(target=watch, name=f"headstart-wait-{key}", daemon=True).start()

    def _refuse(self, key: str, future: Any, reason: str) -> None:
        """End a job that cannot run here: it fails with `reason` (its end reaches `on_done`)."""
        from distributed import Event

        self._refused[key] = reason
        # Should a worker take it this very moment, its first look at the stop event ends it.
        Event(stop_event_name(key), client=self.client).set()
        future.cancel()

    def _subscribe(self, key: str, on_event: EventSink, affinity: str | None = None) -> None:
        def received(event: tuple[float, dict[str, Any]]) -> None:
            message = event[1]
            if message.get("event") == "started":
                self._started.add(key)
                if affinity is not None and message.get("worker"):
                    self._place(affinity, message["worker"])
            self._ordered.submit(self._handle, on_event, message)

        self.client.subscribe_topic(topic(key), received)

    def _place(self, affinity: str, worker: str) -> None:
        with self._lock:
            self._placed[affinity] = worker
            self._placed.move_to_end(affinity)
            while len(self._placed) > KEPT_PLACES:
                self._placed.popitem(last=False)

    def _follow(self, key: str, future: Any, on_done: DoneSink) -> None:
        self._futures[key] = future
        future.add_done_callback(
            lambda done: self._ordered.submit(self._handle, self._ended, key, done, on_done)
        )

    def _handle(self, function: Callable[..., Any], *args: Any) -> None:
        # The ordered thread's futures are not awaited, so a failure is logged here or never seen.
        if self._closed:
            return
        try:
            function(*args)
        except Exception:
            self.log.exception("headstart jobs: handling a job's report failed")

    def _ended(self, key: str, future: Any, on_done: DoneSink) -> None:
        from distributed import Event

        if self._closed:
            # Closing the client ends its futures' waits, not the jobs: they stay unfinished in
            # the records, for the next start to re-attach to (or to mark lost).
            return
        client = self._client
        self._futures.pop(key, None)
        self._started.discard(key)
        refused = self._refused.pop(key, None)
        try:
            if refused is not None and future.status != "finished":
                on_done("failed", Invalid(refused))
            elif future.status == "finished":
                on_done("succeeded", future.result())
            elif future.status == "cancelled":
                on_done("cancelled", "cancelled before it started")
            else:
                error = future.exception()
                if isinstance(error, Cancelled):
                    on_done("cancelled", str(error))
                else:
                    on_done("failed", error)
        finally:
            if client is not None:
                client.unsubscribe_topic(topic(key))
                client.unpublish_dataset(key)
                Event(stop_event_name(key), client=client).clear()

    def cancel(self, key: str) -> None:
        """Ask the job to stop: a queued one is cancelled, a running one stops at its next batch."""
        from distributed import Event

        Event(stop_event_name(key), client=self.client).set()
        future = self._futures.get(key)
        if future is not None and key not in self._started and future.status == "pending":
            # Not started yet: take it off the queue. Should it start this very moment, its first
            # look at the stop event ends it before it writes anything.
            future.cancel()
