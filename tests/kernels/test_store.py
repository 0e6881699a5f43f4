"""The artifact store, a local folder or an S3 bucket (moto's server on loopback): keys stay inside
it, writes land whole or not at all (rule 7), and an object store is read through a bounded cache."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from headstart.kernels.errors import Invalid
from headstart.kernels.store import ArtifactStore
from tests.conftest import staged_leftovers


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "s3":
        return ArtifactStore(request.getfixturevalue("s3_store_url"), cache=tmp_path / "cache")
    return ArtifactStore(tmp_path / "store")


@pytest.fixture
def s3_url(s3_store_url: str) -> str:
    return s3_store_url


def test_layout_folders_exist(store: ArtifactStore) -> None:
    layout = sorted(p.name for p in store.root.iterdir() if p.name != ".cache")  # the cache's own records
    assert layout == ["bodies", "datasets", "features", "models", "tmp"]


def test_keys_cannot_escape_the_store(store: ArtifactStore) -> None:
    with pytest.raises(Invalid):
        store.path("../outside")
    with pytest.raises(Invalid):
        store.path("/etc/passwd")


def test_staged_work_is_renamed_into_place(store: ArtifactStore) -> None:
    with store.staging() as folder:
        (folder / "model.keras").write_bytes(b"weights")
        store.commit(folder / "model.keras", "models/1/v1/model.keras")
    assert store.path("models/1/v1/model.keras").read_bytes() == b"weights"
    assert staged_leftovers(store) == []
    with store.staging() as folder, pytest.raises(Invalid, match="already exists"):
        (folder / "other").write_bytes(b"x")
        store.commit(folder / "other", "models/1/v1/model.keras")
    assert store.path("models/1/v1/model.keras").read_bytes() == b"weights"


def test_a_failed_transaction_takes_its_artifacts_away(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError), store.staging() as folder, store.placing() as placed:
        (folder / "data").mkdir()
        (folder / "data" / "manifest.json").write_text("{}")
        store.commit(folder / "data", "datasets/7")
        placed.append("datasets/7")
        raise RuntimeError("the database commit failed")
    assert not store.exists("datasets/7")
    assert staged_leftovers(store) == []


def test_content_addressed_commits_keep_the_first(store: ArtifactStore) -> None:
    for content in (b"first", b"second"):
        with store.staging() as folder:
            (folder / "body.keras").write_bytes(content)
            store.commit_if_absent(folder / "body.keras", "bodies/abc.keras")
    assert store.path("bodies/abc.keras").read_bytes() == b"first"


def test_delete_is_idempotent(store: ArtifactStore) -> None:
    with store.staging() as folder:
        (folder / "x").mkdir()
        (folder / "x" / "f").write_text("1")
        store.commit(folder / "x", "models/3")
    store.delete("models/3")
    store.delete("models/3")
    assert not store.exists("models/3")


def test_a_jobs_output_is_the_keys_only_when_it_ends_well(store: ArtifactStore) -> None:
    with store.writing("tmp/create-1") as folder:
        (folder / "model.keras").write_bytes(b"weights")
    with pytest.raises(RuntimeError), store.writing("tmp/create-2") as folder:
        (folder / "model.keras").write_bytes(b"half")
        raise RuntimeError("the worker died")
    assert not store.exists("tmp/create-2")
    assert store.claim("tmp/create-1", "models/4/v1")
    assert store.path("models/4/v1/model.keras").read_bytes() == b"weights"
    assert staged_leftovers(store) == []
    with store.writing("tmp/create-3") as folder:
        (folder / "model.keras").write_bytes(b"again")
    with pytest.raises(Invalid, match="already exists"):
        store.claim("tmp/create-3", "models/4/v1")
    assert not store.claim("tmp/create-3", "models/4/v1", exists_ok=True)  # the first one stands
    assert staged_leftovers(store) == []
    assert store.path("models/4/v1/model.keras").read_bytes() == b"weights"


def test_a_killed_attempts_output_is_replaced(store: ArtifactStore) -> None:
    with store.writing("models/5/candidates/t1") as folder:
        (folder / "stale.keras").write_bytes(b"killed")
    with store.writing("models/5/candidates/t1") as folder:
        (folder / "head.keras").write_bytes(b"head")
    assert sorted(p.name for p in store.path("models/5/candidates/t1").iterdir()) == ["head.keras"]


def test_unclaimed_staging_is_swept_after_its_age(store: ArtifactStore) -> None:
    with store.writing("tmp/export-1", folder=False) as path:
        path.write_bytes(b"zip")
    store.share(store.upload(Path(__file__)))
    assert store.sweep(older_than=3600) == []
    assert len(staged_leftovers(store)) == 2
    swept = store.sweep(older_than=-60)  # as if an hour had passed
    assert "tmp/export-1" in swept
    assert staged_leftovers(store) == []


def test_a_key_prefix_is_not_a_folder(store: ArtifactStore) -> None:
    for key in ("models/1/v1", "models/10/v1"):
        with store.staging() as folder:
            (folder / "v").mkdir()
            (folder / "v" / "model.keras").write_text(key)
            store.commit(folder / "v", key)
    store.delete("models/1")
    assert not store.exists("models/1/v1")
    assert store.path("models/10/v1/model.keras").read_text() == "models/10/v1"


# --- the object store's cache --------------------------------------------------------------------


def downloads(store: ArtifactStore) -> list[str]:
    """Counts the cache's downloads from here on: the remote paths it fetched, in order."""
    fetched: list[str] = []
    assert store.remote is not None
    download = store.remote.download

    def counted(key: str, relative: str, target: Path) -> None:
        fetched.append(f"{key}/{relative}" if relative else key)
        download(key, relative, target)

    store.remote.download = counted  # type: ignore[method-assign]
    return fetched


def write_dataset(url: str, tmp_path: Path, shards: int = 3, size: int = 1000) -> None:
    writer = ArtifactStore(url, cache=tmp_path / "writer")
    with writer.writing("tmp/ingest-1") as folder:
        for n in range(shards):
            (folder / f"train-{n}.npy").write_bytes(bytes([n]) * size)
    writer.claim("tmp/ingest-1", "datasets/1")


@pytest.mark.s3
def test_a_worker_downloads_a_key_once_and_then_reads_it_locally(s3_url: str, tmp_path: Path) -> None:
    write_dataset(s3_url, tmp_path)
    worker = ArtifactStore(s3_url, cache=tmp_path / "worker")
    fetched = downloads(worker)
    folder = worker.path("datasets/1")
    assert sorted(fetched) == [f"datasets/1/train-{n}.npy" for n in range(3)]
    assert folder.is_relative_to(tmp_path / "worker")
    assert (folder / "train-2.npy").read_bytes() == b"\2" * 1000
    assert worker.path("datasets/1") == folder
    assert len(fetched) == 3  # the second read lists the key and downloads nothing


@pytest.mark.s3
def test_a_model_key_written_again_elsewhere_is_fetched_again(s3_url: str, tmp_path: Path) -> None:
    """Model ids can come back after a delete (SQLite reuses the highest): their keys are checked."""
    writer = ArtifactStore(s3_url, cache=tmp_path / "writer")
    with writer.writing("tmp/create-1") as folder:
        (folder / "model.keras").write_bytes(b"first")
        (folder / "extra.json").write_text("{}")
    writer.claim("tmp/create-1", "models/1/v1")
    worker = ArtifactStore(s3_url, cache=tmp_path / "worker")
    assert (worker.path("models/1/v1") / "model.keras").read_bytes() == b"first"
    writer.delete("models/1")
    assert not worker.path("models/1/v1").exists()  # deleted elsewhere: the stale copy goes too
    with writer.writing("tmp/create-2") as folder:
        (folder / "model.keras").write_bytes(b"second")
    writer.claim("tmp/create-2", "models/1/v1")
    assert (worker.path("models/1/v1") / "model.keras").read_bytes() == b"second"
    assert sorted(p.name for p in worker.path("models/1/v1").iterdir()) == ["model.keras"]


@pytest.mark.s3
def test_a_cached_immutable_key_is_read_without_asking_the_store(s3_url: str, tmp_path: Path) -> None:
    """Datasets are permanent, bodies and features named by their content: once cached, no request."""
    write_dataset(s3_url, tmp_path)
    worker = ArtifactStore(s3_url, cache=tmp_path / "worker")
    assert worker.remote is not None
    worker.path("datasets/1")
    listings: list[str] = []
    listing = worker.remote.listing
    worker.remote.listing = lambda key: listings.append(key) or listing(key)  # type: ignore[method-assign]
    assert (worker.path("datasets/1") / "train-1.npy").read_bytes() == b"\1" * 1000
    assert worker.exists("datasets/1")
    worker.path("models/1")  # a model's key is asked for every time
    assert listings == ["models/1"]
    (worker.path("datasets/1") / "train-1.npy").unlink()  # a copy no longer whole is fetched again
    assert (worker.path("datasets/1") / "train-1.npy").read_bytes() == b"\1" * 1000


@pytest.mark.s3
def test_a_retried_jobs_output_loses_what_the_killed_attempt_left(s3_url: str, tmp_path: Path) -> None:
    killed = ArtifactStore(s3_url, cache=tmp_path / "killed")
    with killed.writing("models/5/candidates/t1") as folder:
        (folder / "head.keras").write_bytes(b"old")
        (folder / "leftover.tmp").write_bytes(b"x")
    retry = ArtifactStore(s3_url, cache=tmp_path / "retry")
    with retry.writing("models/5/candidates/t1") as folder:
        (folder / "head.keras").write_bytes(b"new")
    assert retry.remote is not None and sorted(retry.remote.listing("models/5/candidates/t1")) == [
        "head.keras"
    ]
    fresh = ArtifactStore(s3_url, cache=tmp_path / "fresh")
    assert (fresh.path("models/5/candidates/t1") / "head.keras").read_bytes() == b"new"


@pytest.mark.s3
def test_the_cache_keeps_within_its_size_least_recently_used_first(s3_url: str, tmp_path: Path) -> None:
    writer = ArtifactStore(s3_url, cache=tmp_path / "writer")
    for name in "abc":
        with writer.staging() as folder:
            (folder / "body.keras").write_bytes(b"x" * 1000)
            writer.commit(folder / "body.keras", f"bodies/{name}.keras")
    worker = ArtifactStore(s3_url, cache=tmp_path / "worker", cache_bytes=2500)
    a, b = worker.path("bodies/a.keras"), worker.path("bodies/b.keras")
    held = a.open("rb")  # a reader that has it open keeps its bytes through an eviction
    c = worker.path("bodies/c.keras")
    assert worker.cache is not None and worker.cache.size() <= 2500
    assert not a.exists() and b.exists() and c.exists()
    assert held.read() == b"x" * 1000
    held.close()
    assert worker.path("bodies/a.keras").read_bytes() == b"x" * 1000  # fetched again when asked


@pytest.mark.s3
def test_two_workers_on_one_node_share_a_cache(s3_url: str, tmp_path: Path) -> None:
    write_dataset(s3_url, tmp_path, shards=4, size=200_000)
    stores = [ArtifactStore(s3_url, cache=tmp_path / "node") for _ in range(2)]
    fetched = [downloads(store) for store in stores]
    read: list[bytes] = []
    threads = [
        threading.Thread(target=lambda s=s: read.append((s.path("datasets/1") / "train-3.npy").read_bytes()))
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert read == [b"\3" * 200_000] * 2
    assert sum(len(f) for f in fetched) == 4  # one worker fetched the key; the other found it there


@pytest.mark.s3
def test_an_object_store_url_with_no_such_bucket_fails_clearly(s3_server: str, tmp_path: Path) -> None:
    store = ArtifactStore("s3://no-such-bucket/prefix", cache=tmp_path / "cache")
    with pytest.raises(OSError), store.staging() as folder:
        (folder / "f").write_text("x")
        store.commit(folder / "f", "bodies/x.keras")


def test_an_object_store_without_its_package_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match=r"needs a package that is not installed: .*gcsfs"):
        ArtifactStore("gcs://bucket/prefix", cache=tmp_path / "cache")
