"""A sweep's candidates: one head file saved by Keras, the others written from it with their weights."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from headstart.kernels.engine.head_fit import Head, HeadFit
from headstart.kernels.engine.keras_file import read_metadata, save_model
from headstart.kernels.engine.limits import ModelLimits
from headstart.kernels.engine.surgery import head_from_features
from headstart.kernels.schemas import TrainingConfig
from headstart.kernels.store import ArtifactStore, body_key, file_sha256
from headstart.kernels.tasks import training
from headstart.kernels.tasks.artifacts import BODY_REF_FILE, HEAD_FILE

DIM, LABELS = 6, 3


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(str(tmp_path / "store"))
    body = keras.Sequential([keras.Input((8,)), keras.layers.Dense(DIM, name="features")])
    path = store.path(body_key("b0dy"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(body, path, kind="feature_vector", labels=None)
    return store


def fits(count: int) -> list[HeadFit]:
    rng = np.random.default_rng(0)
    return [
        HeadFit(TrainingConfig(), Head(rng.normal(size=(DIM, LABELS)), rng.normal(size=LABELS)))
        for _ in range(count)
    ]


def stage(store: ArtifactStore, heads: list[HeadFit], tmp_path: Path, name: str) -> list[Path]:
    folders = [tmp_path / name / f"t{n}" for n in range(len(heads))]
    for folder in folders:
        folder.mkdir(parents=True)
    staged = training._stage_heads(store, heads, ["a", "b", "c"], "b0dy", folders, ModelLimits())
    for facts, folder in zip(staged, folders, strict=True):
        assert facts.content_sha == file_sha256(folder / HEAD_FILE)
        assert facts.size_bytes > (folder / HEAD_FILE).stat().st_size  # the body's bytes count too
        assert (folder / BODY_REF_FILE).read_text() == "b0dy\n"
    return folders


def test_every_staged_head_file_loads_with_its_own_weights(store, tmp_path: Path) -> None:
    heads = fits(4)
    folders = stage(store, heads, tmp_path, "sweep")
    for fit, folder in zip(heads, folders, strict=True):
        loaded = keras.saving.load_model(folder / HEAD_FILE, compile=False, safe_mode=True)
        kernel, bias = loaded.layers[-1].get_weights()
        np.testing.assert_array_equal(kernel, fit.head.kernel.astype(np.float32))
        np.testing.assert_array_equal(bias, fit.head.bias.astype(np.float32))
        assert read_metadata(folder / HEAD_FILE) == read_metadata(folders[0] / HEAD_FILE)
        assert (read_metadata(folder / HEAD_FILE) or {})["labels"] == ["a", "b", "c"]


def without_ids(value: object) -> object:
    """A config without what differs from one build and save to the next: Keras' shared object ids
    (Python ids) and the numbered names of input layers."""
    if isinstance(value, dict):
        return {
            k: without_ids(v)
            for k, v in value.items()
            if k != "shared_object_id" and not (k == "name" and str(v).startswith("input_layer"))
        }
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def test_a_written_head_file_is_the_archive_keras_saves(store, tmp_path: Path) -> None:
    """The same members in the same order, the same weights' bytes, the same config and metadata."""
    heads = fits(2)
    folders = stage(store, heads, tmp_path, "sweep")
    head = head_from_features(DIM, LABELS)
    head.layers[-1].set_weights([heads[1].head.kernel, heads[1].head.bias])
    saved = tmp_path / "keras.keras"
    save_model(head, saved, kind="classifier", labels=["a", "b", "c"])
    with zipfile.ZipFile(folders[1] / HEAD_FILE) as ours, zipfile.ZipFile(saved) as theirs:
        assert ours.namelist() == theirs.namelist()
        for name in ours.namelist():
            if name == "config.json":
                assert without_ids(json.loads(ours.read(name))) == without_ids(json.loads(theirs.read(name)))
            elif name != "metadata.json":  # it holds the date saved
                assert ours.read(name) == theirs.read(name), name


def test_a_file_laid_out_otherwise_makes_no_template(tmp_path: Path) -> None:
    kernel, bias = np.ones((DIM, LABELS), np.float32), np.zeros(LABELS, np.float32)
    head = head_from_features(DIM, LABELS)
    head.layers[-1].set_weights([kernel, bias])
    path = tmp_path / "head.keras"
    save_model(head, path, kind="classifier", labels=["a", "b", "c"])
    assert training.HeadFileTemplate.of(path, kernel, bias) is not None
    assert training.HeadFileTemplate.of(path, kernel * 2, bias) is None  # not the weights it holds
