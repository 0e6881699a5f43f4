"""The probe task: one cell of the transfer benchmark, a body's standard linear probe on a dataset.

The body runs through the feature cache (`training.cached_features`), so a body that was ever
trained or scored on the dataset does not run again; the probe (`engine.probe`) fits on the train
split's features and is scored on the test split's, with the evaluations' figures (`score`).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from headstart.kernels.engine.scoring import EvaluationResult
from headstart.kernels.store import ArtifactStore, dataset_key
from headstart.kernels.tasks.artifacts import VersionRef
from headstart.kernels.tasks.reporting import Reporter
from headstart.kernels.tasks.training import cached_features

BATCH = 32


class ProbeInput(BaseModel):
    """Probe one body on one dataset: a version that carries the body, and the body's sha."""

    model_config = ConfigDict(frozen=True)

    store_url: str
    ref: VersionRef
    body_sha: str
    dataset_id: int


def probe(given: ProbeInput, reporter: Reporter) -> EvaluationResult:
    """The cell's test accuracy, per-class figures and confusion (no per-image predictions).

    Progress counts the images through the body (phase "features", none when cached), then the
    probe's fit and score (phase "probe"). A dataset whose train split holds fewer than two labels
    gets a result that says so, with no accuracy, rather than a failed job that would be asked again.
    """
    from headstart.kernels.engine.probe import fit_probe
    from headstart.kernels.engine.scoring import score
    from headstart.kernels.engine.shards import DatasetReader

    store = ArtifactStore(given.store_url)
    dataset = DatasetReader(store.path(dataset_key(given.dataset_id)))
    labels = list(dataset.labels)
    splits = {"train": dataset.split("train"), "test": dataset.split("test")}
    features, _ = cached_features(
        store, given.ref, given.body_sha, given.dataset_id, splits, BATCH, {}, reporter.progress("features")
    )
    fitting = reporter.progress("probe")
    fitting(0, 2)
    truth = np.asarray(splits["test"].labels, np.int64)
    try:
        fitted = fit_probe(features["train"], np.asarray(splits["train"].labels))
    except ValueError as error:
        return EvaluationResult(False, str(error), 0, None, None, [], [], [])
    fitting(1, 2)
    probabilities = fitted.probabilities(features["test"], len(labels))
    scored = score(probabilities, truth, model_labels=labels, dataset_labels=labels, top_k=1)
    fitting(2, 2)
    # Per-image predictions stay out: a cell is read for its figures, and a test split can be large.
    return EvaluationResult(
        comparable=scored.comparable,
        note=scored.note if scored.count else "the test split is empty",
        count=scored.count,
        accuracy=scored.accuracy,
        loss=scored.loss,
        per_class=scored.per_class,
        confusion=scored.confusion,
        predictions=[],
    )
