"""Model versions as the service records them: what the worker that staged a version found out."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from headstart.extension.catalog.database import transaction
from headstart.extension.catalog.tables import ModelVersion
from headstart.extension.managers import models as model_manager
from headstart.kernels.schemas import TrainingConfig
from headstart.kernels.store import file_sha256
from tests.conftest import tiny_model


def test_a_versions_content_is_hashed_by_the_worker_that_staged_it(
    catalog, alice, shapes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create's version and a training's candidate carry the sha256 of their own file from the task
    that wrote it, so the service never reads a staged file to hash it inside the record's
    transaction (seconds for a large upload)."""

    def refused(path: object) -> str:
        raise AssertionError(f"the service hashed {path}")

    monkeypatch.setattr(model_manager, "file_sha256", refused)
    model = tiny_model(catalog, alice, labels=["circle", "square", "triangle"])
    training = catalog.trainings.start(alice, model.id, "shapes", TrainingConfig(epochs=1, batch_size=16))
    child = catalog.trainings.decide(alice, training.id, "keep_both", name="child")
    with transaction(catalog.engine) as session:
        versions = session.exec(
            select(ModelVersion).where(col(ModelVersion.model_id).in_([model.id, child.id]))
        ).all()
    assert len(versions) == 2
    for version in versions:
        assert version.content_sha == file_sha256(catalog.store.path(version.artifact))
