"""The training engine: which head to keep, and both ways of training a head on features."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.kernels.engine import training
from headstart.kernels.engine.training import fit_head, plan_head
from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import TrainingConfig


def test_plan_keeps_a_head_with_the_same_label_set() -> None:
    same = plan_head("classifier", ["b", "a", "c"], ["a", "b", "c"])
    assert same.keep and same.order == (1, 0, 2)
    assert not plan_head("classifier", ["a", "b"], ["a", "b", "c"]).keep
    assert not plan_head("classifier", ["a", "b", "c", "d"], ["a", "b", "c"]).keep
    assert not plan_head("feature_vector", None, ["a", "b"]).keep
    with pytest.raises(Invalid):
        plan_head("classifier", ["a", "a", "b"], ["a", "b"])


def separable(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three clusters in 8 dimensions, stored as float16 like the feature cache."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    centres = np.eye(3, 8) * 4
    return (centres[labels] + rng.normal(0, 0.5, (count, 8))).astype(np.float16), labels


@pytest.mark.parametrize("streamed", [False, True])
def test_a_head_learns_from_features_in_memory_or_streamed(monkeypatch, streamed: bool) -> None:
    from headstart.kernels.engine.surgery import head_from_features

    if streamed:
        monkeypatch.setattr(training, "IN_MEMORY_FEATURES_BYTES", 0)
    head = head_from_features(8, 3)
    seen = []
    config = TrainingConfig(epochs=5, batch_size=16, learning_rate=0.05)
    reports = fit_head(head, separable(300, 0), separable(60, 1), config, on_epoch=seen.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5] and seen == reports
    assert reports[-1].val_accuracy > 0.9
    assert reports[-1].loss < reports[0].loss


def test_categorical_loss_takes_one_hot_targets() -> None:
    from headstart.kernels.engine.surgery import head_from_features

    config = TrainingConfig(epochs=3, learning_rate=0.05, loss="categorical_crossentropy")
    reports = fit_head(head_from_features(8, 3), separable(200, 2), None, config)
    assert reports[-1].accuracy > 0.8 and reports[-1].val_loss is None
