"""The standard linear probe: how well a frozen body's features serve a dataset, with no choices made.

A multinomial logistic regression (L2, C=1, lbfgs) on the train split's standardized features, the
probe that bench/accuracy.py compares headstart's heads against (StandardScaler + scikit-learn's
LogisticRegression). Kornblith et al., "Do Better ImageNet Models Transfer Better?" (CVPR 2019),
rank representations by such a probe; VTAB (Zhai et al., 2019) by a fixed head too. Being fixed, it
makes one body's cell comparable with another's: the transfer benchmark is a table of these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headstart.kernels.engine.standardization import FeatureScale

# scikit-learn's defaults for LogisticRegression, with room to converge on 1,280-d features.
PROBE_C = 1.0
MAX_ITER = 1000
# Rows standardized at a time, so memory-mapped features are never copied whole in float64.
CHUNK = 8192


@dataclass(frozen=True)
class ProbeFit:
    """A fitted probe: the feature scale and the regression, for probabilities on other features."""

    scale: FeatureScale
    classes: np.ndarray  # the dataset label indices the train split holds, in the regression's order
    model: object  # sklearn.linear_model.LogisticRegression

    def probabilities(self, features: np.ndarray, n_labels: int) -> np.ndarray:
        """(images, n_labels) probabilities; a label absent from the train split gets none."""
        out = np.zeros((len(features), n_labels), np.float64)
        for start in range(0, len(features), CHUNK):
            chunk = self.scale.apply(features[start : start + CHUNK])
            out[start : start + len(chunk), self.classes] = self.model.predict_proba(chunk)  # type: ignore[attr-defined]
        return out


def fit_probe(features: np.ndarray, labels: np.ndarray) -> ProbeFit:
    """Fit the probe on a train split's features and dataset label indices.

    Raises ValueError when the split holds fewer than two labels: there is nothing to tell apart.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, np.int64)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"the train split holds {len(classes)} label(s); a probe needs at least 2")
    scale = FeatureScale.of(features)
    standardized = np.concatenate(
        [scale.apply(features[start : start + CHUNK]) for start in range(0, len(features), CHUNK)]
    )
    model = LogisticRegression(C=PROBE_C, max_iter=MAX_ITER)
    model.fit(standardized, labels)
    return ProbeFit(scale, np.asarray(model.classes_, np.int64), model)
