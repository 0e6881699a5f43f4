"""Workers that share nothing with the service but the object store.

A Dask scheduler and two workers started by hand, as a cluster of other machines would be: each
worker runs as a system account of its own, in a working folder of its own, and cannot read the
service's home (0700, root's), where the catalog's database is. The catalog's store is an S3 bucket
(moto's server on loopback). An ingest, a create, a training whose worker is killed mid-way (the
retry runs on the other), a decision and an evaluation go end to end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets.config import Config

from headstart.extension.jobs.dask_runner import DaskRunner
from headstart.extension.manager import Catalog
from headstart.extension.standalone import free_port
from headstart.kernels.store import candidate_key
from tests.conftest import staged_leftovers, system_accounts, tiny_model, traversable
from tests.extension.jobs.test_jobs import LONG, ended, job_of, kill_when_it_trains, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.s3]

REPO = Path(__file__).resolve().parents[3]

WORKER_ACCOUNT = "hsworker"
# What a worker's environment carries from the test's: the S3 server's endpoint and credentials.
S3_SETTINGS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")


def spawn(command: list[str], log: Path, **options: object) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **options)  # type: ignore[call-overload]


@pytest.fixture
def cluster(s3_server: str) -> Iterator[tuple[str, list[Path]]]:
    """A scheduler's address, and the working folders of its two workers (theirs alone)."""
    outer = Path(tempfile.mkdtemp(prefix="headstart-share-nothing-"))
    outer.chmod(0o755)
    processes: list[subprocess.Popen[bytes]] = []
    reached = (REPO / "pyproject.toml", Path(sys.prefix) / "x", Path(sys.base_prefix) / "bin" / "x")
    try:
        with system_accounts(WORKER_ACCOUNT), traversable(*reached):
            account = pwd.getpwnam(WORKER_ACCOUNT)
            port = free_port()
            address = f"tcp://127.0.0.1:{port}"
            scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            processes.append(
                spawn([*scheduler, "--port", str(port), "--no-dashboard"], outer / "scheduler.log")
            )
            folders = []
            for number in range(2):
                folder = outer / f"worker-{number}"
                folder.mkdir(mode=0o700)
                os.chown(folder, account.pw_uid, account.pw_gid)
                environment = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(folder),
                    "HEADSTART_STORE_CACHE": str(folder / "store-cache"),
                    "TF_CPP_MIN_LOG_LEVEL": "2",
                    **{key: os.environ[key] for key in S3_SETTINGS},
                }
                worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny"]
                options = ["--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{number}"]
                processes.append(
                    spawn(
                        [*worker, *options, "--local-directory", str(folder / "dask")],
                        outer / f"worker-{number}.log",
                        cwd=folder,
                        env=environment,
                        user=account.pw_uid,
                        group=account.pw_gid,
                        extra_groups=[],
                        start_new_session=True,
                    )
                )
                folders.append(folder)
            yield address, folders
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(30)
        shutil.rmtree(outer, ignore_errors=True)


def test_workers_that_share_nothing_but_the_store(
    cluster: tuple[str, list[Path]], s3_store_url: str, shapes_folder: Path, tmp_path: Path
) -> None:
    address, folders = cluster
    home = tmp_path / "service"
    home.mkdir(mode=0o700)
    config = Config({"JobRunner": {"cluster": "address", "address": address}})
    catalog = Catalog(home=str(home), store_url=s3_store_url, runner_class=DaskRunner, config=config)
    try:
        catalog.runner.client.wait_for_workers(2, timeout=180)
        alice = catalog.user("alice")
        catalog.datasets.add(alice, shapes_folder, name="shapes")
        model = tiny_model(catalog, alice)

        training = catalog.trainings.begin(alice, model.id, "shapes", LONG).id
        # What a killed attempt's upload left under the candidate's key: the retry removes it.
        remote = catalog.store.remote
        assert remote is not None
        remote.fs.pipe(remote.remote(candidate_key(model.id, training), "leftover.bin"), b"killed")
        kill_when_it_trains(catalog, alice, training, 1)
        killed = job_of(catalog, training).worker
        done = wait_for(lambda: ended(catalog, alice, training), seconds=300, what="the retried training")
        assert (done.status, done.job.state, done.job.attempts) == ("candidate", "succeeded", 2)
        assert done.job.worker not in (None, killed)  # the other worker took the retry

        updated = catalog.trainings.decide(alice, training, "update")
        assert updated is not None and updated.version == 2
        score = catalog.evaluations.on_split(alice, model.id, "shapes", "test")
        assert score.model_version == 2 and score.accuracy is not None and score.count > 0

        # Everything is in the bucket; the service's home holds its database, and no store.
        kept = remote.listing(f"models/{model.id}/v2")
        assert kept and "leftover.bin" not in kept
        assert sorted(p.name for p in home.iterdir()) == ["catalog.sqlite"]
        assert staged_leftovers(catalog.store) == []
        # The workers read the shards through their own caches.
        for folder in folders:
            assert not any(folder.rglob("catalog.sqlite"))
        assert any((folder / "store-cache").rglob("train-*.npy") for folder in folders)
    finally:
        catalog.close()
