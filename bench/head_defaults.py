"""Benchmark: head-training settings on a frozen body's cached features, against the linear probe.

Anchor: the standard linear probe, scikit-learn's `StandardScaler` + `LogisticRegression` (lbfgs,
C=1.0, max_iter 5,000), fitted on the same cached train features and scored on the same test
features. The target (issue 10): headstart's head at its defaults within 1 point of it.

Data: Fashion-MNIST from Debian's `dataset-fashion-mnist`, written by `demo_data.write_fashion`
(seed 0): N training images per class, N/8 validation images per class (as an 80/10/10 split
gives) from the official training set, and a fixed `--test-per-class` of each class from the
official test set. Each dataset is a folder of `train/`, `val/`, `test/` label folders of the
28x28 PNGs, ingested by the normal path (resized to 224x224 there); its features are computed once
by the real feature cache (float16 where their range allows) under `bench/.data/`.

Ours: `fit_head` (the engine's own training) on those features, for each setting of the table,
scored on the test features. "raw" rows train on unstandardized features, as the head did before
standardization; every other row is the engine as it is. Accuracies are means over `--seeds` seeds
of the head's training (min-max in brackets); seconds are the mean fit time.

Run as `.venv/bin/python bench/head_defaults.py [--body efficientnet_lite0] [--weights imagenet|none]
[--per-class 50 200 1000] [--seeds 3] [--grid defaults|full]`. It prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / ".data" / "head_defaults"
PROBE_C = 1.0
CONTEXT_C = (0.01, 0.1, 10.0)


# --- data --------------------------------------------------------------------------------------


def dataset(per_class: int, test_per_class: int) -> Path:
    """The ingested dataset for N images per class, made once under bench/.data/."""
    import shutil

    from headstart.kernels.engine.demo_data import write_fashion
    from headstart.kernels.engine.ingest import ingest
    from headstart.kernels.engine.limits import IngestLimits

    name = f"fashion-{per_class}-{test_per_class}"
    stored = DATA / "datasets" / name
    if (stored / "manifest.json").exists():
        return stored
    folder = DATA / "folders" / name
    shutil.rmtree(folder, ignore_errors=True)
    write_fashion(
        folder, per_class=per_class, val_per_class=max(1, per_class // 8), test_per_class=test_per_class
    )
    partial = stored.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    ingest(folder, partial, limits=IngestLimits())
    partial.rename(stored)
    return stored


@dataclass
class Features:
    labels: list[str]
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    seconds: float  # to compute them; 0 when they were cached


def body_for(architecture: str, weights: str | None) -> tuple[object, str]:
    from headstart.kernels.engine.architectures import build_model
    from headstart.kernels.engine.surgery import body_fingerprint

    body = build_model(architecture, labels=None, weights=weights, seed=0)
    return body, body_fingerprint(body)


def features(body: object, body_sha: str, folder: Path) -> Features:
    from headstart.kernels.engine.features import FeatureCache
    from headstart.kernels.engine.shards import DatasetReader

    reader = DatasetReader(folder)
    cache = FeatureCache(DATA / "features", DATA / "tmp")
    started, computed = time.perf_counter(), False
    out = {}
    for split in ("train", "val", "test"):
        images = reader.split(split)
        found = cache.load(body_sha, folder.name, split)
        if found is None:
            found = cache.compute(body, images, body_sha, folder.name, split)
            computed = True
        out[split] = (found, np.asarray(images.labels))
    return Features(reader.labels, **out, seconds=time.perf_counter() - started if computed else 0.0)


# --- the anchor --------------------------------------------------------------------------------


def probe(feats: Features, c: float) -> tuple[float, float]:
    """Test accuracy and fit seconds of StandardScaler + LogisticRegression(C=c) on the train split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(feats.train[0], np.float32), feats.train[1]
    started = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(x, y)
    seconds = time.perf_counter() - started
    return float(model.score(np.asarray(feats.test[0], np.float32), feats.test[1])), seconds


# --- ours --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str
    config: dict = field(default_factory=dict)  # TrainingConfig fields over the defaults
    raw: bool = False  # train on unstandardized features (the head before standardization)
    glorot: bool = False  # start a fresh head from Glorot-uniform weights instead of zeros


DEFAULTS = Setting("defaults")
OLD_DEFAULTS = {"epochs": 10, "learning_rate": 1e-3, "batch_size": 32, "early_stopping_patience": None}


def grid(kind: str) -> list[Setting]:
    settings = [
        Setting("raw, old defaults (before)", OLD_DEFAULTS, raw=True, glorot=True),
        Setting("standardized, old defaults", OLD_DEFAULTS, glorot=True),
        DEFAULTS,
    ]
    if kind == "defaults":
        return settings
    settings += [Setting("defaults, glorot init", glorot=True)]
    for lr in (3e-4, 3e-3, 1e-2):
        settings.append(Setting(f"learning_rate {lr:g}", {"learning_rate": lr}))
    for batch in (32, 64, 256):
        settings.append(Setting(f"batch_size {batch}", {"batch_size": batch}))
    for patience in (3, 10):
        settings.append(Setting(f"patience {patience}", {"early_stopping_patience": patience}))
    settings.append(Setting("no early stopping", {"early_stopping_patience": None}))
    for epochs in (10, 30, 100):
        settings.append(Setting(f"epochs {epochs}", {"epochs": epochs}))
    settings.append(Setting("adamw", {"optimizer": "adamw"}))
    settings.append(Setting("raw, defaults", raw=True))
    return settings


class _Unscaled:
    """A stand-in for FeatureScale that leaves features as they are, for the "raw" rows."""

    @classmethod
    def of(cls, features: np.ndarray) -> _Unscaled:
        return cls()

    def apply(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32)

    def unfold_weights(self, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(kernel, np.float64), np.asarray(bias, np.float64)

    def fold_weights(self, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(kernel, np.float64), np.asarray(bias, np.float64)


@contextlib.contextmanager
def unscaled() -> Iterator[None]:
    from headstart.kernels.engine import head_fit

    saved = head_fit.FeatureScale
    head_fit.FeatureScale = _Unscaled  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        head_fit.FeatureScale = saved  # type: ignore[misc]


@dataclass
class Outcome:
    accuracies: list[float]
    epochs: list[int]
    seconds: list[float]


def train_head(feats: Features, setting: Setting, seeds: int) -> Outcome:
    import keras

    from headstart.kernels.engine.inference import predict_batches
    from headstart.kernels.engine.standardization import FeatureScale
    from headstart.kernels.engine.surgery import head_from_features
    from headstart.kernels.engine.training import fit_head
    from headstart.kernels.schemas import TrainingConfig

    outcome = Outcome([], [], [])
    dim = int(feats.train[0].shape[-1])
    for seed in range(seeds):
        config = TrainingConfig(**{**setting.config, "seed": seed})
        keras.utils.set_random_seed(seed)
        head = head_from_features(dim, len(feats.labels))
        if setting.glorot:
            # Glorot-uniform in the space the head trains in: raw features for "raw" rows, else
            # standardized ones, whose scaling fit_head undoes first (so it is folded in here).
            dense = head.layers[-1]
            kernel = keras.ops.convert_to_numpy(keras.initializers.GlorotUniform(seed)(dense.kernel.shape))
            dense.set_weights([kernel, np.zeros(dense.bias.shape, np.float32)])
            if not setting.raw:
                FeatureScale.of(feats.train[0]).fold(dense)
        started = time.perf_counter()
        with unscaled() if setting.raw else contextlib.nullcontext():
            reports = fit_head(head, feats.train, feats.val, config)
        outcome.seconds.append(time.perf_counter() - started)
        probabilities = predict_batches(head, [np.asarray(feats.test[0], np.float32)], batch_size=256)
        outcome.accuracies.append(float((probabilities.argmax(-1) == feats.test[1]).mean()))
        outcome.epochs.append(len(reports))
    return outcome


# --- the report --------------------------------------------------------------------------------


def describe_defaults() -> str:
    from headstart.kernels.schemas import TrainingConfig

    d = TrainingConfig()
    return (
        f"{d.optimizer}, learning rate {d.learning_rate:g}, batch {d.batch_size}, up to {d.epochs} epochs, "
        f"early stopping patience {d.early_stopping_patience} on val loss (best weights restored)"
    )


def feature_stats(feats: Features) -> str:
    x = np.asarray(feats.train[0], np.float32)
    spread = x.std(axis=0)
    live = spread[spread > 0]
    ratio = float(np.percentile(live, 99) / max(np.percentile(live, 1), 1e-30)) if live.size else 0.0
    return (
        f"{x.shape[1]}-d {feats.train[0].dtype}, min {x.min():.3g}, max {x.max():.3g}, "
        f"{(x == 0).mean():.0%} zeros, {int((spread == 0).sum())} constant, "
        f"per-feature std p99/p1 {ratio:.3g}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body", default="efficientnet_lite0", help="a zoo architecture")
    parser.add_argument("--weights", default="imagenet", choices=("imagenet", "none"))
    parser.add_argument("--per-class", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid", choices=("defaults", "full"), default="full")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    weights = None if args.weights == "none" else args.weights
    body, body_sha = body_for(args.body, weights)
    print(f"$ {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{platform.node()}: {os.cpu_count()} cores; body {args.body} weights={args.weights}")
    print(f"defaults: {describe_defaults()}")
    for per_class in args.per_class:
        feats = features(body, body_sha, dataset(per_class, args.test_per_class))
        sizes = "/".join(str(len(s[1])) for s in (feats.train, feats.val, feats.test))
        print(f"\n## {per_class} per class: train/val/test {sizes}", end="")
        print(f", features computed in {feats.seconds:.0f} s" if feats.seconds else ", features cached")
        print(f"features: {feature_stats(feats)}")
        anchor, anchor_seconds = probe(feats, PROBE_C)
        context = ", ".join(f"C={c:g} {probe(feats, c)[0]:.3f}" for c in CONTEXT_C)
        print(f"linear probe (StandardScaler + LogisticRegression, lbfgs, C={PROBE_C:g}): {anchor:.3f}")
        print(f"  in {anchor_seconds:.1f} s; other C for context: {context}")
        print(f"{'setting':<30} {'test acc':>8} {'min-max':>13} {'vs probe':>9} {'epochs':>7} {'fit s':>6}")
        for setting in grid(args.grid):
            outcome = train_head(feats, setting, args.seeds)
            mean = statistics.fmean(outcome.accuracies)
            span = f"{min(outcome.accuracies):.3f}-{max(outcome.accuracies):.3f}"
            print(
                f"{setting.name:<30} {mean:>8.3f} {span:>13} {100 * (mean - anchor):>+8.1f}p "
                f"{statistics.fmean(outcome.epochs):>7.1f} {statistics.fmean(outcome.seconds):>6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
