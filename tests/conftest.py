"""Shared fixtures: real catalogs on SQLite, on PostgreSQL and with an S3 store (moto's server on
loopback), and tiny real datasets and models."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from headstart.extension.jobs.dask_runner import DaskRunner

POSTGRES_ENV = "HEADSTART_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url is None and os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set: .ci/run must start PostgreSQL for the catalog tests")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server, dropped afterwards."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(f"{POSTGRES_ENV} is not set (CI sets it; see .ci/postgres.sh)")
    import psycopg

    name = f"headstart_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


S3_BUCKET = "headstart-tests"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server on a loopback port (moto's server mode, which s3fs's own tests run against),
    with one bucket; its endpoint. The session's environment points every S3 client at it, the Dask
    workers' included (they start after it), and keeps object stores' local caches in a tmp folder.
    """
    from headstart.extension.standalone import serve_s3

    folder = tmp_path_factory.mktemp("s3")
    with serve_s3(folder / "moto.log", buckets=[S3_BUCKET]) as settings:
        settings = {**settings, "HEADSTART_STORE_CACHE": str(folder / "store-cache")}
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
        try:
            yield settings["AWS_ENDPOINT_URL"]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def s3_store_url(s3_server: str) -> str:
    """A fresh prefix of the test bucket, as a store URL."""
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex}"


# The catalog's backends: its database, and where its store is. The S3 one keeps SQLite.
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("s3", marks=pytest.mark.s3),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture
def store_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The backend's store: an S3 prefix, or a folder under tmp_path."""
    if backend == "s3":
        return str(request.getfixturevalue("s3_store_url"))
    return str(tmp_path / "home" / "store")


def on_cluster(scheduler: str) -> dict[str, object]:
    """Catalog settings whose jobs run as the service's do: a DaskRunner on the shared local cluster."""
    from traitlets.config import Config

    from headstart.extension.jobs.dask_runner import DaskRunner

    config = Config({"JobRunner": {"cluster": "address", "address": scheduler}})
    return {"runner_class": DaskRunner, "config": config}


@pytest.fixture
def catalog(tmp_path: Path, db_url: str, store_url: str, dask_scheduler: str) -> Iterator[object]:
    """A real catalog: the backend's database and store, and the service's way of running jobs (a
    DaskRunner on the session's local cluster)."""
    from headstart.extension.manager import Catalog

    instance = Catalog(
        home=str(tmp_path / "home"), db_url=db_url, store_url=store_url, **on_cluster(dask_scheduler)
    )
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated shapes dataset (3 labels) as a folder of PNGs."""
    from headstart.kernels.engine.demo_data import write_shapes

    return write_shapes(tmp_path_factory.mktemp("shapes") / "shapes", per_class=14, seed=1)


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slice of scikit-learn's digits, scaled to 224x224."""
    from headstart.kernels.engine.demo_data import write_digits

    return write_digits(tmp_path_factory.mktemp("digits") / "digits", limit=120)


def fashion_mnist_dir() -> Path:
    """Where Debian's dataset-fashion-mnist put its files; CI must have it, elsewhere tests skip."""
    from headstart.kernels.engine.fashion_mnist import FASHION_MNIST_DIR, fashion_mnist_missing

    missing = fashion_mnist_missing(FASHION_MNIST_DIR)
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs it")
        pytest.skip(missing)
    return FASHION_MNIST_DIR


FASHION_PER_CLASS = {"train": 50, "val": 10, "test": 50}


@pytest.fixture(scope="session")
def fashion_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fashion-MNIST as `train|val|test/<word>/<file>.png`: per class, 50 training and 10 validation
    images from the official training set and a fixed 50 of the official test set (seed 0)."""
    from headstart.kernels.engine.demo_data import write_fashion

    return write_fashion(
        tmp_path_factory.mktemp("fashion") / "fashion",
        per_class=FASHION_PER_CLASS["train"],
        val_per_class=FASHION_PER_CLASS["val"],
        test_per_class=FASHION_PER_CLASS["test"],
        seed=0,
        directory=fashion_mnist_dir(),
    )


@pytest.fixture
def alice(catalog: object) -> object:
    return catalog.user("alice")  # type: ignore[attr-defined]


@pytest.fixture
def bob(catalog: object) -> object:
    return catalog.user("bob")  # type: ignore[attr-defined]


@pytest.fixture
def shapes(catalog: object, alice: object, shapes_folder: Path) -> object:
    """The shapes dataset ingested into the test's catalog."""
    return catalog.datasets.add(alice, shapes_folder, name="shapes")  # type: ignore[attr-defined]


def tiny_model(
    catalog: object, owner: object, *, labels: list[str] | None = None, **changes: object
) -> object:
    """A small CNN with a few filters at 224x224: the cheapest real model."""
    return catalog.models.create(  # type: ignore[attr-defined]
        owner,
        name=str(changes.pop("name", "tiny")),
        architecture="small_cnn",
        labels=labels,
        weights=None,
        options={"filters": 2},
        **changes,
    )


@pytest.fixture(scope="session")
def job_runner(s3_server: str) -> Iterator[DaskRunner]:
    """The service's own local cluster, made by its cluster factory: two worker processes, retries=1.

    Shared by the tests that run jobs (directly, or through `dask_scheduler`), so its workers import
    TensorFlow once. A job's worker may die once and the job runs again; the second death fails it.
    Its workers start after the S3 server, whose settings they inherit.
    """
    from headstart.extension.jobs.dask_runner import DaskRunner

    # Not niced: on a busy CI machine the tests would wait on workers at the lowest priority
    # (test_jobs checks the niced default on a cluster of its own).
    runner = DaskRunner(cluster="local", n_workers=2, retries=1, worker_nice=0)
    # Each worker imports Keras now, at once, rather than in the first test that sends it a job:
    # on a busy machine that import outlasts an HTTP test's 20 s request timeout.
    runner.client.run(exec, "import keras")
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def dask_scheduler(job_runner: DaskRunner) -> str:
    """The address of the shared cluster's scheduler, for services configured with cluster='address'."""
    return str(job_runner.client.scheduler.address)


def run_bounded(call: Callable[[], Any], seconds: float = 120.0) -> Any:
    """`call()` in a thread, its result; fails instead of hanging when it does not end in time."""
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"it did not end within {seconds:g} s"
    return answer[0]


def staged_leftovers(store: Any) -> list[str]:
    """What a store's `tmp/` holds: this process's local files in flight, and an object store's keys."""
    local = {path.name for path in store.tmp.iterdir()}
    remote = (
        {name.split("/")[0] for name in store.remote.listing("tmp")} if store.remote is not None else set()
    )
    return sorted(local | remote)


def require_root() -> None:
    """Skip unless root (making system accounts and running processes as them takes it); fail in CI,
    which runs as root."""
    if os.geteuid() != 0:
        message = "this test makes system accounts, which takes root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def system_accounts(*names: str) -> Iterator[None]:
    """System accounts of these names, with homes, removed (with what they run) at the end."""
    require_root()
    for name in names:
        subprocess.run(["userdel", "--remove", name], capture_output=True)  # a crashed run's
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        yield
    finally:
        for name in names:
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            subprocess.run(["userdel", "--remove", name], capture_output=True)


@contextlib.contextmanager
def traversable(*paths: Path) -> Iterator[None]:
    """Let every account pass through (never list) the folders above `paths`, as a shared install's
    are; a checkout under root's 0700 home is not. What was changed is put back."""
    changed: dict[Path, int] = {}
    for path in paths:
        for folder in path.resolve().parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH and folder not in changed:
                changed[folder] = stat.S_IMODE(mode)
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)
