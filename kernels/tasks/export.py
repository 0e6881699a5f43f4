"""The export task: a model version converted to a SavedModel or a TFLite file, zipped with its labels.

It stages the zip under the store key its input names; the service keeps it beside the version
when it records the result, so the next download in that format converts nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from headstart.kernels.store import ArtifactStore
from headstart.kernels.tasks.artifacts import VersionRef, load_version
from headstart.kernels.tasks.reporting import Reporter


class ExportInput(BaseModel):
    """An export job: which version, into which format, and the store key to stage the zip at."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    ref: VersionRef
    format: Literal["saved_model", "tflite"]
    staging: str


def export_version(given: ExportInput, reporter: Reporter) -> int:
    """Convert a version (its shared body and head assembled) and stage the zip; returns its size."""
    from headstart.kernels.engine.export import export_model

    progress = reporter.progress("export")
    progress(0, 1)
    store, ref = ArtifactStore(given.store_url), given.ref
    model = load_version(store, ref)
    reporter.check()
    with store.writing(given.staging, folder=False, retry=reporter.retry) as target:
        size = export_model(model, target, format=given.format, kind=ref.kind, labels=ref.labels)
    progress(1, 1)
    return size
