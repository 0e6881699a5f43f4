"""Jobs on a real Dask LocalCluster with worker processes: reports, cancel, faults, restarts, GPUs.

Every cluster here is the product's own, made by its cluster factory through a `JobRunner`: the
session's (`job_runner`, retries=1, two workers) and this module's (`runner_without_retries`,
retries=0, one worker). Most tests open a catalog whose runner connects to a cluster's scheduler,
as a service configured with c.JobRunner.cluster = "address" does; the retry tests give the catalog
the local cluster's runner itself, as the service with its default `local` cluster has.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Job
from headstart.extension.jobs.dask_runner import DaskRunner
from headstart.extension.manager import Catalog
from headstart.extension.managers.jobs import LOST
from headstart.kernels.errors import Invalid, NotFound
from headstart.kernels.schemas import TrainingConfig
from headstart.kernels.store import candidate_key
from tests.conftest import staged_leftovers, tiny_model

# The whole small CNN trains on the images: slow enough (a fraction of a second an epoch) to act
# on a training while it runs; every epoch runs, with no early stopping, so tests can count them.
LONG = TrainingConfig(epochs=40, batch_size=8, fine_tune_layers="all", early_stopping_patience=None)
QUICK = TrainingConfig(epochs=3, batch_size=16)
GPU = QUICK.model_copy(update={"gpu": True})
# Tests whose subject is the cluster, not the database, run on SQLite only; the rest on both.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def open_catalog(home: Path, db_url: str, scheduler: str, **runner: Any) -> Catalog:
    catalog = Catalog(home=str(home), db_url=db_url)
    catalog.runner = DaskRunner(cluster="address", address=scheduler, **runner)
    return catalog


@pytest.fixture
def service(tmp_path: Path, db_url: str, dask_scheduler: str) -> Iterator[Catalog]:
    """A catalog as the service opens it: with a job runner on the cluster."""
    catalog = open_catalog(tmp_path / "home", db_url, dask_scheduler)
    yield catalog
    catalog.runner.close()
    catalog.close()


@pytest.fixture
def local_service(tmp_path: Path, db_url: str, job_runner: DaskRunner) -> Iterator[Catalog]:
    """A catalog whose runner is the session's local cluster's own (c.JobRunner.retries = 1)."""
    catalog = Catalog(home=str(tmp_path / "home"), db_url=db_url)
    catalog.runner = job_runner  # shared: the session closes it
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def runner_without_retries() -> Iterator[DaskRunner]:
    """A second local cluster from the factory, of one worker, with c.JobRunner.retries = 0."""
    runner = DaskRunner(cluster="local", n_workers=1, retries=0, worker_nice=0)
    runner.client  # noqa: B018  (starts the cluster)
    yield runner
    runner.close()


def allowed_failures(runner: DaskRunner) -> int:
    """What the cluster's scheduler was told: how many worker deaths a task survives."""
    return int(runner.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))


def wait_for(check: Callable[[], Any], seconds: float = 120, what: str = "the condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def job_of(catalog: Catalog, training_id: int) -> Job:
    with transaction(catalog.engine) as session:
        from sqlmodel import select

        return session.exec(select(Job).where(Job.training_id == training_id)).one()


def worker_pid(catalog: Catalog, address: str) -> int:
    return int(catalog.runner.client.run(os.getpid, workers=[address])[address])


def ended(catalog: Catalog, user: Any, training_id: int) -> Any:
    training = catalog.trainings.get(user, training_id)
    return training if training.job.state not in ("queued", "running") else None


def start(catalog: Catalog, user: Any, model_id: int, config: TrainingConfig) -> int:
    return catalog.trainings.begin(user, model_id, "shapes", config).id


def leftovers(catalog: Catalog) -> list[str]:
    return staged_leftovers(catalog.store)


def seeded(home: Path, db_url: str, shapes_folder: Path) -> tuple[Catalog, Any, Any]:
    """A catalog with the shapes dataset and a tiny model, both made in this process (no runner yet),
    so that only the job under test makes a worker import TensorFlow."""
    catalog = Catalog(home=str(home), db_url=db_url)
    alice = catalog.user("alice")
    catalog.datasets.add(alice, shapes_folder, name="shapes")
    return catalog, alice, tiny_model(catalog, alice)


def test_ingest_create_and_evaluate_run_as_jobs_on_workers(service, shapes_folder) -> None:
    alice = service.user("alice")
    dataset = service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice, labels=dataset.labels)
    scored = service.evaluations.on_split(alice, model.id, "shapes", "test")
    assert scored.count == dataset.counts["test"]
    jobs = service.jobs.list(alice)
    assert [(j.kind, j.state) for j in jobs] == [
        ("ingest", "succeeded"),
        ("create", "succeeded"),
        ("evaluate", "succeeded"),
    ]
    workers = set(service.runner.client.scheduler_info()["workers"])
    assert all(j.worker in workers and j.attempts == 1 for j in jobs)  # ran on the cluster
    assert jobs[0].phase == "ingest" and jobs[0].done == jobs[0].total == sum(dataset.counts.values())
    assert jobs[2].phase == "evaluate" and jobs[2].done == jobs[2].total == dataset.counts["test"]


def test_epochs_arrive_while_the_training_runs(service, shapes_folder) -> None:
    alice = service.user("alice")
    service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice)
    training_id = start(service, alice, model.id, LONG)
    # The job is read before the epochs (so that a job seen ended has its candidate recorded): on
    # PostgreSQL an epoch committed between the two reads shows before its job's phase does, so
    # the phase is waited for with the epochs rather than asserted from the same answer.
    live = wait_for(
        lambda: (
            (t := service.trainings.get(alice, training_id)).epochs
            and t.job.state == "running"
            and t.job.phase == "epochs"
            and t
        ),
        what="an epoch of a running training, its job in phase epochs",
    )
    assert live.status == "running"
    seen = live.epochs[-1].epoch
    newer = wait_for(
        lambda: service.trainings.get(alice, training_id, since=seen).epochs, what="a newer epoch"
    )
    assert all(e.epoch > seen for e in newer)  # `since` sends only what is new
    service.trainings.cancel(alice, training_id)
    wait_for(lambda: ended(service, alice, training_id), what="the cancel")


@SQLITE_ONLY
def test_cancel_stops_at_a_batch_and_keeps_finished_epochs(service, shapes_folder) -> None:
    alice = service.user("alice")
    service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice)
    training_id = start(service, alice, model.id, LONG)
    wait_for(lambda: service.trainings.get(alice, training_id).epochs, what="a first epoch")
    service.trainings.cancel(alice, training_id)
    done = wait_for(lambda: ended(service, alice, training_id), what="the cancel")
    assert (done.status, done.job.state) == ("cancelled", "cancelled")
    assert 1 <= len(done.epochs) < LONG.epochs
    assert [e.epoch for e in done.epochs] == list(range(1, len(done.epochs) + 1))
    assert leftovers(service) == []
    assert not service.store.path(f"models/{model.id}/candidates").exists()


def kill_when_it_trains(catalog: Catalog, user: Any, training_id: int, attempt: int) -> None:
    """SIGKILL the worker process that runs attempt `attempt` of a training, once it has an epoch."""
    wait_for(
        lambda: (
            job_of(catalog, training_id).attempts == attempt
            and catalog.trainings.get(user, training_id).epochs
        ),
        what=f"attempt {attempt} training",
    )
    os.kill(worker_pid(catalog, job_of(catalog, training_id).worker), signal.SIGKILL)


@SQLITE_ONLY
def test_a_killed_worker_is_retried_then_the_job_fails(local_service, shapes_folder) -> None:
    """c.JobRunner.retries = 1 on the factory's local cluster: one death is retried, two fail the job."""
    service = local_service
    assert service.runner.retries == allowed_failures(service.runner) == 1
    alice = service.user("alice")
    service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice)

    # Killed once: the scheduler runs it again elsewhere, and it finishes.
    retried = start(service, alice, model.id, LONG)
    kill_when_it_trains(service, alice, retried, 1)
    done = wait_for(lambda: ended(service, alice, retried), seconds=240, what="the retried training")
    assert (done.status, done.job.state, done.job.attempts) == ("candidate", "succeeded", 2)
    assert [e.epoch for e in done.epochs] == list(range(1, LONG.epochs + 1))  # the second attempt's

    # Killed twice: past the retries, it fails with the reason.
    failing = start(service, alice, model.id, LONG)
    kill_when_it_trains(service, alice, failing, 1)
    kill_when_it_trains(service, alice, failing, 2)
    failed = wait_for(lambda: ended(service, alice, failing), seconds=240, what="the failure")
    assert (failed.status, failed.job.state, failed.job.attempts) == ("failed", "failed", 2)
    assert "KilledWorker" in failed.job.reason and "died" in failed.job.reason
    assert failed.error == failed.job.reason
    assert not service.store.exists(candidate_key(model.id, failing))
    assert leftovers(service) == []


def test_without_retries_the_first_killed_worker_fails_the_job(
    tmp_path, shapes_folder, runner_without_retries
) -> None:
    """c.JobRunner.retries = 0: the first death of the job's worker fails it, after one attempt."""
    assert allowed_failures(runner_without_retries) == 0
    db_url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    service, alice, model = seeded(tmp_path / "home", db_url, shapes_folder)
    service.runner = runner_without_retries
    try:
        failing = start(service, alice, model.id, LONG)
        kill_when_it_trains(service, alice, failing, 1)
        failed = wait_for(lambda: ended(service, alice, failing), seconds=240, what="the failure")
        assert (failed.status, failed.job.state, failed.job.attempts) == ("failed", "failed", 1)
        assert "KilledWorker" in failed.job.reason and failed.error == failed.job.reason
        assert leftovers(service) == []
    finally:
        service.close()


def test_a_restarted_service_reattaches_and_marks_lost_jobs(
    tmp_path, db_url, dask_scheduler, shapes_folder
) -> None:
    home = tmp_path / "home"
    first = open_catalog(home, db_url, dask_scheduler)
    alice = first.user("alice")
    first.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(first, alice)
    running = start(first, alice, model.id, LONG.model_copy(update={"epochs": 15}))
    wait_for(lambda: first.trainings.get(alice, running).epochs, what="a first epoch")
    # A job the cluster never had, as if submitted to a scheduler that has since restarted.
    with transaction(first.engine) as session:
        gone = Job(kind="evaluate", state="running", owner_id=alice.id, key="headstart-evaluate-0-gone")
        session.add(gone)
        session.flush()
        gone_id = gone.id
    first.runner.close()  # the service stops; the job runs on, published on the scheduler
    first.close()

    second = open_catalog(home, db_url, dask_scheduler)
    try:
        assert second.jobs.reattach() == (1, 1)
        lost = second.jobs.get(alice, gone_id)
        assert (lost.state, lost.reason) == ("failed", LOST)
        done = wait_for(lambda: ended(second, alice, running), seconds=240, what="the re-attached training")
        assert (done.status, done.job.state) == ("candidate", "succeeded")
        # Epochs sent while no service listened come with the result.
        assert [e.epoch for e in done.epochs] == list(range(1, 16))
        assert second.store.path(candidate_key(model.id, running)).is_dir()
    finally:
        second.runner.close()
        second.close()


def test_two_users_train_at_once_and_each_sees_only_their_own(service, shapes_folder) -> None:
    alice, bob = service.user("alice"), service.user("bob")
    service.datasets.add(alice, shapes_folder, name="shapes")
    theirs = {user.name: tiny_model(service, user, public=False) for user in (alice, bob)}
    trainings = {user.name: start(service, user, theirs[user.name].id, QUICK) for user in (alice, bob)}
    for user in (alice, bob):
        done = wait_for(lambda u=user: ended(service, u, trainings[u.name]), what=f"{user.name}'s training")
        assert (done.status, done.job.state) == ("candidate", "succeeded")
        assert [t.id for t in service.trainings.list(user)] == [trainings[user.name]]
        assert [j.training_id for j in service.jobs.list(user) if j.kind == "train"] == [trainings[user.name]]
    with pytest.raises(NotFound):
        service.trainings.get(bob, trainings["alice"])
    with pytest.raises(NotFound):
        service.jobs.get(bob, job_of(service, trainings["alice"]).id)


def test_a_job_that_cannot_be_submitted_fails_at_once(tmp_path, db_url, shapes_folder) -> None:
    """No cluster at the address: the job and its training fail with the reason; nothing stays queued."""
    import dask

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    catalog = open_catalog(tmp_path / "home", db_url, nowhere)
    try:
        alice = catalog.user("alice")
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(OSError):
            catalog.datasets.add(alice, shapes_folder, name="shapes")
        [job] = catalog.jobs.list(alice)
        assert (job.kind, job.state) == ("ingest", "failed") and "could not be submitted" in job.reason
        assert [d.name for d in catalog.datasets.list()] == [] and leftovers(catalog) == []
    finally:
        catalog.runner.close()
        catalog.close()


def test_the_local_cluster_is_on_loopback_with_niced_workers() -> None:
    """The default cluster: worker processes on 127.0.0.1 only, below the service's CPU priority,
    and its scheduler in a process of its own, not the service's."""
    runner = DaskRunner(cluster="local", n_workers=1, worker_nice=7)
    try:
        client = runner.client
        assert client.run_on_scheduler(os.getpid) != os.getpid()
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(address.startswith("tcp://127.0.0.1:") for address in client.scheduler_info()["workers"])
        # The scheduler's HTTP server too, on a free port rather than every interface at 8787.
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        own = os.nice(0)
        assert set(client.run(os.nice, 0).values()) == {min(own + 7, 19)}
        # A task's print goes to standard error, not into the answer's pipe, which no one reads
        # after the address: 1 MB would fill it and block the worker.
        printed = client.submit(lambda size: print("x" * size) or size, 1_000_000, pure=False)
        assert printed.result(timeout=60) == 1_000_000
    finally:
        runner.close()


# The service's side of the lifeline: a runner whose process is killed, the way an OOM killer would.
OWNER = """
import os, sys, time
from headstart.extension.jobs.dask_runner import DaskRunner
runner = DaskRunner(cluster="local", n_workers=1, worker_nice=0)
client = runner.client
workers = client.run(os.getpid)
print(client.run_on_scheduler(os.getpid), *workers.values(), flush=True)
time.sleep(600)
"""


def test_the_local_cluster_ends_with_its_service_however_it_ends() -> None:
    """Killing the service's process (no close, no cleanup) still ends its cluster: the scheduler's
    process and the workers go within seconds, since its standard input, the lifeline, closed."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in owner.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    finally:
        owner.kill()
        owner.wait()
    processes = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(processes, timeout=60)
    assert alive == []


# --- GPU trainings: resources that no worker offers ----------------------------------------------


def tasks_on_scheduler(runner: DaskRunner) -> set[str]:
    return set(runner.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)))


@SQLITE_ONLY  # the API's test of it runs on both databases
def test_a_gpu_training_without_a_gpu_worker_is_refused_at_once(local_service, shapes_folder) -> None:
    """The default local cluster has no worker with GPU=1: nothing is recorded, queued or staged."""
    service = local_service
    alice = service.user("alice")
    service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice)
    before = tasks_on_scheduler(service.runner)
    started = time.monotonic()
    with pytest.raises(Invalid) as refused:
        service.trainings.begin(alice, model.id, "shapes", GPU)
    assert time.monotonic() - started < 5
    address = service.runner.client.scheduler.address
    assert str(refused.value) == (
        "no worker of the local cluster offers GPU=1; start one with "
        f"`dask worker {address} --resources GPU=1`, or train on the CPU"
    )
    assert service.trainings.list(alice) == []
    assert [j.kind for j in service.jobs.list(alice)] == ["ingest", "create"]
    assert service.jobs.list(alice, unfinished=True) == [] and leftovers(service) == []
    assert tasks_on_scheduler(service.runner) <= before  # nothing reached the scheduler
    # The same request on the CPU trains.
    training = start(service, alice, model.id, QUICK)
    done = wait_for(lambda: ended(service, alice, training), what="the CPU training")
    assert (done.status, done.job.state) == ("candidate", "succeeded")


@pytest.fixture
def gpu_worker(runner_without_retries: DaskRunner) -> Iterator[Callable[[], str]]:
    """`join()` starts `dask worker <scheduler> --resources GPU=1`, as an operator would, and
    returns that worker's address once the scheduler knows it; it is stopped after the test."""
    address = runner_without_retries.client.scheduler.address
    processes: list[subprocess.Popen] = []

    def join() -> str:
        command = [str(Path(sys.executable).with_name("dask")), "worker", address, "--resources", "GPU=1"]
        command += ["--nthreads", "1", "--name", "gpu", "--no-nanny", "--no-dashboard"]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        processes.append(subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL))

        def joined() -> str | None:
            workers = runner_without_retries.client.scheduler_info()["workers"]
            return next((a for a, w in workers.items() if w.get("resources", {}).get("GPU")), None)

        return str(wait_for(joined, seconds=60, what="the GPU worker to join"))

    yield join
    for process in processes:
        process.kill()  # the scheduler sees its connection drop; a graceful close takes seconds more
        process.wait(timeout=60)
    wait_for(
        lambda: (
            not any(
                w.get("resources", {}).get("GPU")
                for w in runner_without_retries.client.scheduler_info()["workers"].values()
            )
        ),
        seconds=60,
        what="the GPU worker to leave",
    )


@SQLITE_ONLY
def test_on_a_cluster_that_scales_a_gpu_training_waits_then_runs_on_the_gpu_worker(
    tmp_path, db_url, shapes_folder, runner_without_retries, gpu_worker
) -> None:
    """With c.JobRunner.address_scales_up, the job waits (its phase says for what) until a worker with
    GPU=1 joins, and runs there; on a cluster that does not scale, it is taken at once once one is there."""
    address = runner_without_retries.client.scheduler.address
    home = tmp_path / "home"
    waiting, alice, model = seeded(home, db_url, shapes_folder)
    waiting.runner = DaskRunner(cluster="address", address=address, address_scales_up=True, resource_wait=300)
    try:
        training_id = start(waiting, alice, model.id, GPU)
        job = wait_for(
            lambda: (j := waiting.trainings.get(alice, training_id).job).phase and j, what="the waiting phase"
        )
        assert (job.state, job.phase, job.worker) == ("queued", "waiting for a worker with GPU=1", None)
        gpu = gpu_worker()
        done = wait_for(lambda: ended(waiting, alice, training_id), seconds=240, what="the GPU training")
        assert (done.status, done.job.state, done.job.attempts) == ("candidate", "succeeded", 1)
        assert done.job.worker == gpu
    finally:
        waiting.runner.close()
        waiting.close()

    plain = open_catalog(home, db_url, address)
    try:
        again = start(plain, alice, model.id, GPU)
        done = wait_for(lambda: ended(plain, alice, again), seconds=120, what="the second GPU training")
        assert (done.status, done.job.worker) == ("candidate", gpu)
    finally:
        plain.runner.close()
        plain.close()


@SQLITE_ONLY
def test_a_waiting_gpu_training_fails_with_the_reason_after_resource_wait(
    tmp_path, db_url, shapes_folder, runner_without_retries
) -> None:
    address = runner_without_retries.client.scheduler.address
    service, alice, model = seeded(tmp_path / "home", db_url, shapes_folder)
    service.runner = DaskRunner(cluster="address", address=address, address_scales_up=True, resource_wait=3)
    try:
        # Cancelled while it waits: it ends cancelled, like any queued job.
        cancelled = start(service, alice, model.id, GPU)
        service.trainings.cancel(alice, cancelled)
        done = wait_for(lambda: ended(service, alice, cancelled), what="the cancel")
        assert (done.status, done.job.state) == ("cancelled", "cancelled")

        started = time.monotonic()
        training_id = start(service, alice, model.id, GPU)
        assert service.trainings.get(alice, training_id).job.state == "queued"
        failed = wait_for(lambda: ended(service, alice, training_id), seconds=60, what="the time-out")
        assert 3 <= time.monotonic() - started < 30
        wanted = "no worker with GPU=1 joined the cluster within 3 s"
        reason = f"{wanted}; train on the CPU, or ask the operator for one"
        assert (failed.status, failed.error, failed.job.state, failed.job.reason) == (
            "failed",
            reason,
            "failed",
            reason,
        )
        assert failed.job.phase == "waiting for a worker with GPU=1" and failed.job.attempts == 0
        assert service.jobs.list(alice, unfinished=True) == [] and leftovers(service) == []
        wait_for(lambda: failed.job.key not in tasks_on_scheduler(service.runner), what="the task to leave")
    finally:
        service.runner.close()
        service.close()
