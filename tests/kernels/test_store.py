"""The artifact store: keys stay inside it, and writes land whole or not at all (rule 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headstart.kernels.errors import Invalid
from headstart.kernels.store import ArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def test_layout_folders_exist(store: ArtifactStore) -> None:
    assert sorted(p.name for p in store.root.iterdir()) == ["bodies", "datasets", "features", "models", "tmp"]


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
    assert list(store.path("tmp").iterdir()) == []
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
    assert list(store.path("tmp").iterdir()) == []


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


def test_remote_stores_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="local"):
        ArtifactStore("memory://bucket")
