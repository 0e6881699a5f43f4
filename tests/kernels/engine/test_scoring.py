"""Scoring on small hand-computed cases: label mapping, accuracy, loss, per-class, confusion, top-k."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from headstart.kernels.engine.scoring import EvaluationResult, map_labels, score
from headstart.kernels.errors import Invalid

LABELS = ["cat", "dog", "fox"]

# Four images; predicted argmax: cat, dog, cat, fox; true: cat, dog, dog, fox.
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.5, 0.3, 0.2],
        [0.2, 0.2, 0.6],
    ]
)
TRUE = np.array([0, 1, 1, 2])
LOSS = (-math.log(0.7) - math.log(0.8) - math.log(0.3) - math.log(0.6)) / 4


def classes(result: EvaluationResult) -> list[tuple]:
    return [(c["label"], c["precision"], c["recall"], c["support"]) for c in result.per_class]


def test_perfect_accuracy() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.0, 0.5, 0.5 + 1e-3]])
    result = score(probs, np.array([0, 1, 2]), model_labels=LABELS, dataset_labels=LABELS)
    assert result.comparable is True
    assert result.note == ""
    assert result.count == 3
    assert result.accuracy == 1.0
    assert result.loss == pytest.approx(-(math.log(0.9) + math.log(0.7) + math.log(0.501)) / 3)
    assert result.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert classes(result) == [("cat", 1.0, 1.0, 1), ("dog", 1.0, 1.0, 1), ("fox", 1.0, 1.0, 1)]


def test_imperfect_accuracy_precision_recall_and_confusion() -> None:
    result = score(PROBS, TRUE, model_labels=LABELS, dataset_labels=LABELS)
    assert result.comparable is True
    assert result.count == 4
    assert result.accuracy == 0.75
    assert result.loss == pytest.approx(LOSS)
    assert result.confusion == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    # cat: predicted twice, right once; dog: 2 true, 1 found.
    assert classes(result) == [("cat", 0.5, 1.0, 1), ("dog", 1.0, 0.5, 2), ("fox", 1.0, 1.0, 1)]
    assert result.predictions[2] == {
        "index": 2,
        "true": "dog",
        "top": [
            {"label": "cat", "probability": 0.5},
            {"label": "dog", "probability": 0.3},
            {"label": "fox", "probability": 0.2},
        ],
    }


def test_model_labels_in_another_order_score_the_same() -> None:
    order = [2, 0, 1]
    model_labels = [LABELS[i] for i in order]
    result = score(PROBS[:, order], TRUE, model_labels=model_labels, dataset_labels=LABELS)
    same = score(PROBS, TRUE, model_labels=LABELS, dataset_labels=LABELS)
    assert result.comparable is True
    assert result.accuracy == 0.75
    assert result.loss == pytest.approx(LOSS)
    assert result.confusion == same.confusion
    assert result.per_class == same.per_class
    # Ties (image 1: cat and fox at 0.1) follow the model's output order, so compare the top label.
    assert [p["top"][0] for p in result.predictions] == [p["top"][0] for p in same.predictions]
    assert result.predictions[1]["top"][0] == {"label": "dog", "probability": 0.8}


def test_superset_model_counts_outside_labels_as_errors_in_an_other_column() -> None:
    probs = np.array(
        [
            [0.6, 0.1, 0.1, 0.2],  # cat -> cat
            [0.1, 0.2, 0.1, 0.6],  # dog -> owl
            [0.1, 0.1, 0.7, 0.1],  # fox -> fox
        ]
    )
    result = score(
        probs, np.array([0, 1, 2]), model_labels=["cat", "dog", "fox", "owl"], dataset_labels=LABELS
    )
    assert result.comparable is True
    assert "1 labels outside the dataset" in result.note
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.loss == pytest.approx(-(math.log(0.6) + math.log(0.2) + math.log(0.7)) / 3)
    assert result.confusion == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert classes(result) == [("cat", 1.0, 1.0, 1), ("dog", None, 0.0, 1), ("fox", 1.0, 1.0, 1)]
    assert result.predictions[1]["top"][0] == {"label": "owl", "probability": 0.6}


def test_partial_overlap_is_not_comparable_and_scores_only_known_labels() -> None:
    probs = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5], [0.4, 0.6]])  # model outputs: dog, cat
    result = score(probs, np.array([0, 1, 2, 2]), model_labels=["dog", "cat"], dataset_labels=LABELS)
    assert result.comparable is False
    assert "lacks dataset labels fox" in result.note
    assert result.count == 2
    assert result.accuracy == 1.0
    assert result.loss == pytest.approx(-(math.log(0.7) + math.log(0.9)) / 2)
    assert result.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert classes(result) == [("cat", 1.0, 1.0, 1), ("dog", 1.0, 1.0, 1), ("fox", None, None, 0)]
    # Every image still gets a prediction; equal probabilities keep the model's output order.
    assert len(result.predictions) == 4
    assert result.predictions[2]["true"] == "fox"
    assert [t["label"] for t in result.predictions[2]["top"]] == ["dog", "cat"]


def test_no_overlap_gives_predictions_only() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    result = score(probs, np.array([0, 2]), model_labels=["owl", "bat"], dataset_labels=LABELS)
    assert (result.comparable, result.count, result.accuracy, result.loss) == (False, 0, None, None)
    assert "shares no labels" in result.note
    assert (result.per_class, result.confusion) == ([], [])
    assert [p["top"][0]["label"] for p in result.predictions] == ["bat", "owl"]
    assert [p["true"] for p in result.predictions] == ["cat", "fox"]


def test_feature_vector_model_gives_predictions_without_labels() -> None:
    features = np.arange(10, dtype=np.float32).reshape(2, 5)
    result = score(features, np.array([1, 0]), model_labels=None, dataset_labels=LABELS)
    assert (result.comparable, result.accuracy, result.loss) == (False, None, None)
    assert "feature vectors" in result.note
    assert result.predictions == [
        {"index": 0, "true": "dog", "top": []},
        {"index": 1, "true": "cat", "top": []},
    ]


def test_top_k_is_ordered_by_probability_and_capped_by_the_label_count() -> None:
    probs = np.array([[0.1, 0.4, 0.2, 0.3]])
    labels = ["a", "b", "c", "d"]
    top3 = score(probs, None, model_labels=labels, dataset_labels=labels).predictions[0]["top"]
    assert [(t["label"], t["probability"]) for t in top3] == [("b", 0.4), ("d", 0.3), ("c", 0.2)]
    top9 = score(probs, None, model_labels=labels, dataset_labels=labels, top_k=9).predictions[0]["top"]
    assert [t["label"] for t in top9] == ["b", "d", "c", "a"]
    top1 = score(probs, None, model_labels=labels, dataset_labels=labels, top_k=1).predictions[0]["top"]
    assert top1 == [{"label": "b", "probability": 0.4}]


def test_a_list_of_files_without_true_labels_gives_predictions_only() -> None:
    result = score(
        PROBS[:2], None, model_labels=LABELS, dataset_labels=LABELS, top_k=2, names=["a.jpg", "b.png"]
    )
    assert (result.comparable, result.count, result.accuracy, result.loss) == (False, 0, None, None)
    assert result.predictions == [
        {
            "file": "a.jpg",
            "true": None,
            "top": [{"label": "cat", "probability": 0.7}, {"label": "dog", "probability": 0.2}],
        },
        {
            "file": "b.png",
            "true": None,
            "top": [{"label": "dog", "probability": 0.8}, {"label": "cat", "probability": 0.1}],
        },
    ]


def test_loss_clips_a_zero_probability() -> None:
    result = score(np.array([[1.0, 0.0]]), np.array([1]), model_labels=["a", "b"], dataset_labels=["a", "b"])
    assert result.accuracy == 0.0
    assert result.loss == pytest.approx(-math.log(1e-7))


def test_round_trip_through_json() -> None:
    probs = np.array([[0.6, 0.1, 0.1, 0.2], [0.1, 0.2, 0.1, 0.6]], dtype=np.float32)
    result = score(probs, np.array([0, 1]), model_labels=["cat", "dog", "fox", "owl"], dataset_labels=LABELS)
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = EvaluationResult.from_dict(json.loads(text))
    assert back == result
    assert type(back.predictions[0]["top"][0]["probability"]) is float
    assert back.per_class[1]["precision"] is None
    with pytest.raises(Invalid):
        EvaluationResult.from_dict({"comparable": True})


def test_map_labels() -> None:
    assert map_labels(["fox", "cat", "dog", "owl"], LABELS).model_index == (1, 2, 0)
    assert map_labels(["fox", "cat", "dog", "owl"], LABELS).comparable is True
    partial = map_labels(["dog"], LABELS)
    assert (partial.model_index, partial.comparable, partial.missing) == ((-1, 0, -1), False, ("cat", "fox"))
    assert map_labels(None, LABELS).model_index == (-1, -1, -1)
    with pytest.raises(Invalid, match="cat"):
        map_labels(["cat", "cat"], LABELS)


def test_malformed_inputs_are_refused() -> None:
    with pytest.raises(Invalid):
        score(PROBS, TRUE, model_labels=["cat", "dog"], dataset_labels=LABELS)
    with pytest.raises(Invalid):
        score(PROBS, np.array([0, 1, 3, 0]), model_labels=LABELS, dataset_labels=LABELS)
    with pytest.raises(Invalid):
        score(PROBS, TRUE[:3], model_labels=LABELS, dataset_labels=LABELS)
    with pytest.raises(Invalid):
        score(np.full((1, 3), np.nan), None, model_labels=LABELS, dataset_labels=LABELS)
