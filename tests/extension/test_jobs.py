"""Jobs on a real Dask LocalCluster with worker processes: reports, cancel, faults and restarts.

Each test opens a catalog whose JobRunner connects to the session's cluster (`dask_scheduler`),
as a service configured with c.JobRunner.cluster = "address" does.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import Job
from headstart.extension.jobs.runner import JobRunner
from headstart.extension.manager import Catalog
from headstart.extension.managers.jobs import LOST
from headstart.extension.store import candidate_key
from headstart.kernels.errors import NotFound
from headstart.kernels.schemas import TrainingConfig
from tests.conftest import tiny_model

# The whole small CNN trains on the images: slow enough (a fraction of a second an epoch) to act
# on a training while it runs.
LONG = TrainingConfig(epochs=40, batch_size=8, fine_tune_layers="all")
QUICK = TrainingConfig(epochs=3, batch_size=16)


def open_catalog(home: Path, db_url: str, scheduler: str) -> Catalog:
    catalog = Catalog(home=str(home), db_url=db_url)
    catalog.runner = JobRunner(cluster="address", address=scheduler)
    return catalog


@pytest.fixture
def service(tmp_path: Path, dask_scheduler: str) -> Iterator[Catalog]:
    """A catalog as the service opens it: with a job runner on the cluster."""
    catalog = open_catalog(tmp_path / "home", f"sqlite:///{tmp_path / 'catalog.sqlite'}", dask_scheduler)
    yield catalog
    catalog.runner.close()
    catalog.close()


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
    training = catalog.trainings.begin(user, model_id, "shapes", config)
    catalog.trainings.submit(user, training.id)
    return training.id


def leftovers(catalog: Catalog) -> list[str]:
    folder = catalog.store.path("tmp")
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


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
    live = wait_for(
        lambda: (t := service.trainings.get(alice, training_id)).epochs and t.job.state == "running" and t,
        what="an epoch of a running training",
    )
    assert live.status == "running" and live.job.phase == "epochs"
    seen = live.epochs[-1].epoch
    newer = wait_for(
        lambda: service.trainings.get(alice, training_id, since=seen).epochs, what="a newer epoch"
    )
    assert all(e.epoch > seen for e in newer)  # `since` sends only what is new
    service.trainings.cancel(alice, training_id)
    wait_for(lambda: ended(service, alice, training_id), what="the cancel")


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


def test_a_killed_worker_is_retried_then_the_job_fails(service, shapes_folder) -> None:
    alice = service.user("alice")
    service.datasets.add(alice, shapes_folder, name="shapes")
    model = tiny_model(service, alice)

    def kill_when_it_trains(training_id: int, attempt: int) -> None:
        wait_for(
            lambda: (
                job_of(service, training_id).attempts == attempt
                and service.trainings.get(alice, training_id).epochs
            ),
            what=f"attempt {attempt} training",
        )
        os.kill(worker_pid(service, job_of(service, training_id).worker), signal.SIGKILL)

    # Killed once: the scheduler runs it again elsewhere, and it finishes.
    retried = start(service, alice, model.id, LONG)
    kill_when_it_trains(retried, 1)
    done = wait_for(lambda: ended(service, alice, retried), seconds=240, what="the retried training")
    assert (done.status, done.job.state, done.job.attempts) == ("candidate", "succeeded", 2)
    assert [e.epoch for e in done.epochs] == list(range(1, LONG.epochs + 1))  # the second attempt's

    # Killed twice: past the scheduler's allowed failures, it fails with the reason.
    failing = start(service, alice, model.id, LONG)
    kill_when_it_trains(failing, 1)
    kill_when_it_trains(failing, 2)
    failed = wait_for(lambda: ended(service, alice, failing), seconds=240, what="the failure")
    assert (failed.status, failed.job.state) == ("failed", "failed")
    assert "KilledWorker" in failed.job.reason and "died" in failed.job.reason
    assert failed.error == failed.job.reason
    assert not service.store.exists(candidate_key(model.id, failing))
    assert leftovers(service) == []


def test_a_restarted_service_reattaches_and_marks_lost_jobs(tmp_path, dask_scheduler, shapes_folder) -> None:
    home, db_url = tmp_path / "home", f"sqlite:///{tmp_path / 'catalog.sqlite'}"
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
        assert second.trainings.reattach() == (1, 1)
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


def test_a_job_that_cannot_be_submitted_fails_at_once(tmp_path, shapes_folder) -> None:
    """No cluster at the address: the job and its training fail with the reason; nothing stays queued."""
    import dask

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    catalog = open_catalog(tmp_path / "home", f"sqlite:///{tmp_path / 'catalog.sqlite'}", nowhere)
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
    """The default cluster: worker processes on 127.0.0.1 only, below the service's CPU priority."""
    runner = JobRunner(cluster="local", n_workers=1, worker_nice=7)
    try:
        client = runner.client
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(address.startswith("tcp://127.0.0.1:") for address in client.scheduler_info()["workers"])
        # The scheduler's HTTP server too, on a free port rather than every interface at 8787.
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        own = os.nice(0)
        assert set(client.run(os.nice, 0).values()) == {min(own + 7, 19)}
    finally:
        runner.close()
