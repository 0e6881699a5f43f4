"""The ingest task: decode an upload into uint8 shards, staged under the key its input names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from headstart.kernels.engine.limits import IngestLimits
from headstart.kernels.store import ArtifactStore
from headstart.kernels.tasks.reporting import Reporter


class IngestInput(BaseModel):
    """An ingest job: the upload in the store (a zip), how to read it, and where to stage the shards."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    source: str  # the store key of the uploaded zip
    staging: str  # the store key of the folder the shards are written to
    skip_invalid: bool = False
    resize_policy: str = "center_crop"
    limits: IngestLimits = IngestLimits()


class IngestResult(BaseModel):
    """What an ingest staged: the labels, the images per split, the files it skipped, the policies."""

    model_config = ConfigDict(frozen=True)

    labels: list[str]
    counts: dict[str, int]
    skipped: list[dict[str, str]]
    resize_policy: str
    split_policy: str


def ingest_dataset(given: IngestInput, reporter: Reporter) -> IngestResult:
    """Decode an upload into shards under `staging`; nothing is left there when it fails."""
    from headstart.kernels.engine.ingest import ingest

    store = ArtifactStore(given.store_url)
    with store.writing(given.staging, retry=reporter.retry) as folder:
        result = ingest(
            store.path(given.source),
            folder,
            limits=given.limits,
            skip_invalid=given.skip_invalid,
            resize_policy=given.resize_policy,
            progress=reporter.progress("ingest"),
        )
    manifest = result.manifest
    return IngestResult(
        labels=list(manifest["labels"]),
        counts={split: info["count"] for split, info in manifest["splits"].items()},
        skipped=list(manifest["skipped"]),
        resize_policy=manifest["resize_policy"],
        split_policy=manifest["split_policy"],
    )
