"""Benchmark: the accuracy transfer learning reaches with a pretrained EfficientNet-Lite0, and its cost.

Data: Fashion-MNIST from Debian's `dataset-fashion-mnist`, written by `demo_data.write_fashion`
(seed 0) as `train|val|test/<word>/` folders of 28x28 grey PNGs: N training images per class, N/8
validation images per class from the official training set, and a fixed 200 of each class (2,000)
from the official test set. Each size is ingested through the normal path (`datasets.add`, resized
to 224x224 there) into a fresh local `Catalog` under `bench/.data/accuracy/`, so every cache starts
cold.

Parts (choose with `--parts`; a skipped part prints "skipped (--parts)"):
- headstart: a classifier created as `headstart models create` does (`efficientnet_lite0`,
  `weights="imagenet"`, the ten words as labels), trained by `trainings.start` (the path of
  `headstart train`) at TrainingConfig's defaults, frozen body. Cold: the body runs once over train
  and val and the features are cached; warm: the same training again, a cache hit. The candidate is
  kept (`keep_both`) and scored by the catalog's evaluation on the test split.
- probe: the standard linear probe, StandardScaler + LogisticRegression (lbfgs, C=1, max_iter
  5,000), on the same cached train features, scored on the cached test features. Target:
  headstart within 1 point.
- recipe: keras.io's transfer-learning recipe: the same pretrained body frozen (`trainable=False`,
  called with `training=False`), a Dense softmax head, `model.fit` on the images (the body runs on
  every image every epoch) for as many epochs as headstart ran, with the same optimizer, learning
  rate and batch size. Only `fit` is timed, as only `trainings.start` is on our side. Target:
  headstart's accuracy at least the recipe's, at at least 8x less time.
- random: the same body randomly initialised (`weights=None`), trained by headstart at its
  defaults: the points that pretraining buys.
- finetune: `fine_tune_layers` 20 and "all" for `--fine-tune-epochs` epochs (TrainingConfig's
  defaults otherwise), starting from the frozen-body model headstart kept (keras.io's second
  stage; from the created model when the headstart part is skipped). BatchNormalization stays
  frozen (the engine's rule).

Run as `.venv/bin/python bench/accuracy.py [--per-class 200 1000] [--parts headstart,probe,recipe,
random,finetune] [--fine-tune-epochs 3]`. It prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from headstart.extension.catalog.tables import User
    from headstart.extension.manager import Catalog
    from headstart.kernels.schemas import TrainingConfig, TrainingPublic

DATA = Path(__file__).resolve().parent / ".data" / "accuracy"
ARCHITECTURE = "efficientnet_lite0"
PARTS = ("headstart", "probe", "recipe", "random", "finetune")
TEST_PER_CLASS = 200
PROBE_C = 1.0
PROBE_TARGET = 1.0  # points
SPEED_TARGET = 8.0  # recipe seconds / headstart seconds


# --- data --------------------------------------------------------------------------------------


def fashion_folder(per_class: int) -> Path:
    """The `train|val|test/<word>/` PNG folders for N images per class, written once."""
    from headstart.kernels.engine.demo_data import write_fashion

    folder = DATA / "folders" / f"fashion-{per_class}-{TEST_PER_CLASS}"
    done = folder.with_name(folder.name + ".done")
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"writing Fashion-MNIST PNGs under {folder} (once)...", flush=True)
    write_fashion(
        folder,
        per_class=per_class,
        val_per_class=max(1, per_class // 8),
        test_per_class=TEST_PER_CLASS,
        seed=0,
    )
    done.touch()
    return folder


# --- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a size's table; `accuracy` None means not measured, and `note` says why."""

    name: str
    accuracy: float | None = None
    seconds: float | None = None
    note: str = ""


def skipped(name: str) -> Row:
    return Row(name, note="skipped (--parts)")


# --- headstart's side --------------------------------------------------------------------------


class Headstart:
    """The catalog's own path: create, `trainings.start`, `decide`, `evaluations.on_split`."""

    def __init__(self, catalog: Catalog, user: User, dataset_id: int) -> None:
        self.catalog, self.user, self.dataset_id = catalog, user, dataset_id

    def create(self, name: str, weights: str | None) -> int:
        from headstart.kernels.engine.fashion_mnist import FASHION_LABELS

        model = self.catalog.models.create(
            self.user, name=name, architecture=ARCHITECTURE, labels=list(FASHION_LABELS), weights=weights
        )
        return model.id

    def train(self, model_id: int, config: TrainingConfig, cache: str | None) -> tuple[TrainingPublic, float]:
        """One training end to end, timed; `cache` is the feature-cache state it must report."""
        started = time.perf_counter()
        training = self.catalog.trainings.start(self.user, model_id, self.dataset_id, config)
        seconds = time.perf_counter() - started
        if training.status != "candidate":
            raise RuntimeError(f"training {training.id} ended {training.status}: {training.error}")
        if cache is not None and training.feature_cache != cache:
            raise RuntimeError(
                f"expected feature cache {cache!r}, training {training.id} says {training.feature_cache!r}"
            )
        return training, seconds

    def keep_and_score(self, training: TrainingPublic, name: str) -> tuple[int, float, float]:
        """Keep the candidate as a new model; its test accuracy and the evaluation's seconds."""
        model = self.catalog.trainings.decide(self.user, training.id, "keep_both", name=name)
        assert model is not None
        started = time.perf_counter()
        evaluation = self.catalog.evaluations.on_split(self.user, model.id, self.dataset_id, "test")
        if evaluation.accuracy is None:
            raise RuntimeError(f"model {model.id} has no test accuracy: {evaluation.result}")
        return model.id, float(evaluation.accuracy), time.perf_counter() - started

    def discard(self, training: TrainingPublic) -> None:
        self.catalog.trainings.decide(self.user, training.id, "discard")

    def cached(self, model_id: int, splits: tuple[str, ...]) -> tuple[dict[str, np.ndarray], str]:
        """The model body's features for `splits` from the catalog's feature cache (computed if missing)."""
        from headstart.kernels.engine.shards import DatasetReader
        from headstart.kernels.store import dataset_key
        from headstart.kernels.tasks.training import cached_features

        ref = self.catalog.models.ref(self.user, model_id)
        reader = DatasetReader(self.catalog.store.path(dataset_key(self.dataset_id)))
        wanted = {name: reader.split(name) for name in splits}
        sha = ref.body_ref or ref.body_sha
        assert sha is not None
        found, state = cached_features(self.catalog.store, ref, sha, self.dataset_id, wanted, 32, {})
        return found, state

    def body_sha(self, model_id: int) -> str:
        ref = self.catalog.models.ref(self.user, model_id)
        return str(ref.body_ref or ref.body_sha)


def describe(training: TrainingPublic) -> str:
    ran = len(training.epochs)
    best = min(training.epochs, key=lambda e: e.val_loss if e.val_loss is not None else float("inf"))
    return f"{ran} epochs (best val loss at {best.epoch})"


# --- the anchors -------------------------------------------------------------------------------


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """Test accuracy and fit seconds of StandardScaler + LogisticRegression on the train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=5000))
    model.fit(np.asarray(train[0], np.float32), train[1])
    seconds = time.perf_counter() - started
    return float(model.score(np.asarray(test[0], np.float32), test[1])), seconds


def recipe(
    hs: Headstart, model_id: int, reader: Any, epochs: int, config: TrainingConfig
) -> tuple[float, float, float, str]:
    """keras.io's recipe on the images: test accuracy, fit seconds, evaluate seconds, a body check.

    The base is the body of the catalog's own pretrained classifier (loaded as a training loads
    it), so both sides start from the same weights; its fingerprint is checked against the catalog's.
    """
    import keras

    from headstart.kernels.engine.surgery import body_fingerprint, split_model
    from headstart.kernels.tasks.artifacts import load_version

    if config.optimizer != "adam":
        raise RuntimeError(f"the recipe here uses Adam; TrainingConfig's default is {config.optimizer}")
    ref = hs.catalog.models.ref(hs.user, model_id)
    base, _ = split_model(load_version(hs.catalog.store, ref))
    same = (
        "the same body as headstart's"
        if body_fingerprint(base) == hs.body_sha(model_id)
        else "A DIFFERENT BODY"
    )
    train_split, val_split, test_split = (reader.split(name) for name in ("train", "val", "test"))
    train = train_split.read(np.arange(len(train_split)))
    val = val_split.read(np.arange(len(val_split)))
    keras.utils.set_random_seed(config.seed)
    base.trainable = False
    inputs = keras.Input(base.input_shape[1:])
    features = base(inputs, training=False)
    outputs = keras.layers.Dense(len(reader.labels), activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    model.fit(train[0], train[1], batch_size=config.batch_size, epochs=epochs, validation_data=val, verbose=0)
    fit_seconds = time.perf_counter() - started
    del train, val
    test = test_split.read(np.arange(len(test_split)))
    started = time.perf_counter()
    _, accuracy = model.evaluate(test[0], test[1], batch_size=config.batch_size, verbose=0)
    return float(accuracy), fit_seconds, time.perf_counter() - started, same


# --- one size ----------------------------------------------------------------------------------


def run_size(per_class: int, parts: set[str], fine_tune_epochs: int, fine_tune_lr: float | None) -> None:
    from headstart.extension.manager import Catalog
    from headstart.kernels.engine.shards import DatasetReader
    from headstart.kernels.schemas import TrainingConfig
    from headstart.kernels.store import dataset_key

    folder = fashion_folder(per_class)
    defaults = TrainingConfig()
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA, prefix="catalog-") as home:
        catalog = Catalog(home=home)
        try:
            user = catalog.user("bench")
            started = time.perf_counter()
            dataset = catalog.datasets.add(user, folder, name=f"fashion-{per_class}")
            ingest_seconds = time.perf_counter() - started
            reader = DatasetReader(catalog.store.path(dataset_key(dataset.id)))
            sizes = "/".join(str(len(reader.split(s))) for s in ("train", "val", "test"))
            print(
                f"\n## {per_class} per class: train/val/test {sizes} images, "
                f"ingested by datasets.add in {ingest_seconds:.0f} s",
                flush=True,
            )
            rows = measure(
                Headstart(catalog, user, dataset.id),
                reader,
                parts,
                defaults,
                fine_tune_epochs,
                fine_tune_lr,
            )
        finally:
            catalog.close()
    print_table(per_class, rows)


@dataclass
class Figures:
    """What one size measured, by part, for the table and the comparisons."""

    frozen: Row
    warm: Row
    probe: Row
    recipe: Row
    random: Row
    fine: list[Row]
    epochs: int | None = None


def measure(
    hs: Headstart,
    reader: Any,
    parts: set[str],
    defaults: TrainingConfig,
    fine_epochs: int,
    fine_lr: float | None,
) -> Figures:
    figures = Figures(
        skipped("headstart, frozen body, cold cache"),
        skipped("headstart, frozen body, warm cache"),
        skipped("linear probe on the cached features"),
        skipped("keras.io recipe, frozen base in model.fit"),
        skipped("headstart, random-init body (weights=None)"),
        [skipped(f"headstart, fine_tune_layers={n}, {fine_epochs} epochs") for n in (20, "all")],
    )
    pretrained: int | None = None
    kept: int | None = None
    if parts - {"random"}:
        print("creating the pretrained classifier (efficientnet_lite0, weights=imagenet)...", flush=True)
        pretrained = hs.create("lite0-imagenet", "imagenet")

    if "headstart" in parts:
        assert pretrained is not None
        print("headstart: trainings.start, frozen body, cold feature cache...", flush=True)
        cold, seconds = hs.train(pretrained, defaults, "miss")
        kept, accuracy, eval_seconds = hs.keep_and_score(cold, "lite0-imagenet frozen")
        figures.epochs = len(cold.epochs)
        figures.frozen = Row(
            figures.frozen.name, accuracy, seconds, f"{describe(cold)}; test evaluation {eval_seconds:.0f} s"
        )
        print(f"  {seconds:.1f} s, test accuracy {accuracy:.4f}, {describe(cold)}", flush=True)
        print("headstart: the same training again, warm feature cache...", flush=True)
        warm, seconds = hs.train(pretrained, defaults, "hit")
        hs.discard(warm)
        figures.warm = Row(figures.warm.name, None, seconds, f"{describe(warm)}; same training, cache hit")
        print(f"  {seconds:.2f} s", flush=True)

    if "probe" in parts:
        assert pretrained is not None
        print("probe: StandardScaler + LogisticRegression on the catalog's cached features...", flush=True)
        feats, state = hs.cached(pretrained, ("train", "test"))
        labels = {name: np.asarray(reader.split(name).labels) for name in ("train", "test")}
        accuracy, seconds = probe((feats["train"], labels["train"]), (feats["test"], labels["test"]))
        where = "from the cache" if state == "hit" else "computed (cache miss)"
        note = f"lbfgs, C={PROBE_C:g}; features {where}"
        figures.probe = Row(figures.probe.name, accuracy, seconds, note)
        print(f"  test accuracy {accuracy:.4f}, fit {seconds:.1f} s", flush=True)

    if "recipe" in parts:
        epochs = figures.epochs or defaults.epochs
        source = "as many as headstart ran" if figures.epochs else "TrainingConfig's most (headstart skipped)"
        print(f"recipe: keras.io transfer learning, model.fit for {epochs} epochs ({source})...", flush=True)
        assert pretrained is not None
        accuracy, seconds, eval_seconds, same = recipe(hs, pretrained, reader, epochs, defaults)
        figures.recipe = Row(
            figures.recipe.name,
            accuracy,
            seconds,
            f"{epochs} epochs ({source}); {same}; test evaluation {eval_seconds:.0f} s",
        )
        print(f"  {seconds:.1f} s, test accuracy {accuracy:.4f}; {same}", flush=True)

    if "random" in parts:
        print("random: efficientnet_lite0 weights=None, trainings.start at the defaults...", flush=True)
        model = hs.create("lite0-random", None)
        training, seconds = hs.train(model, defaults, "miss")
        _, accuracy, eval_seconds = hs.keep_and_score(training, "lite0-random frozen")
        figures.random = Row(
            figures.random.name,
            accuracy,
            seconds,
            f"{describe(training)}; test evaluation {eval_seconds:.0f} s",
        )
        print(f"  {seconds:.1f} s, test accuracy {accuracy:.4f}", flush=True)

    if "finetune" in parts:
        start = kept if kept is not None else pretrained
        assert start is not None
        origin = "from the kept frozen-body model" if kept is not None else "from the created model"
        figures.fine = []
        for layers in (20, "all"):
            name = f"headstart, fine_tune_layers={layers}, {fine_epochs} epochs"
            print(f"finetune: {name} ({origin})...", flush=True)
            update: dict[str, Any] = {"fine_tune_layers": layers, "epochs": fine_epochs}
            if fine_lr is not None:
                update["learning_rate"] = fine_lr
            config = defaults.model_copy(update=update)
            training, seconds = hs.train(start, config, None)
            _, accuracy, eval_seconds = hs.keep_and_score(training, f"lite0-imagenet fine-tune {layers}")
            note = (
                f"{origin}; {len(training.epochs)} epochs at learning rate {config.learning_rate:g}; "
                f"test evaluation {eval_seconds:.0f} s"
            )
            figures.fine.append(Row(name, accuracy, seconds, note))
            print(f"  {seconds:.1f} s, test accuracy {accuracy:.4f}", flush=True)
    return figures


# --- the report --------------------------------------------------------------------------------


def print_table(per_class: int, f: Figures) -> None:
    rows = [f.frozen, f.warm, f.probe, f.recipe, f.random, *f.fine]
    print(f"\n### {per_class} per class")
    print(f"| {'part':<46} | {'test acc':>8} | {'seconds':>8} | note |")
    print(f"| {'-' * 46} | {'-' * 8} | {'-' * 8} | --- |")
    for row in rows:
        accuracy = "-" if row.accuracy is None else f"{row.accuracy:.4f}"
        seconds = "-" if row.seconds is None else f"{row.seconds:.1f}"
        print(f"| {row.name:<46} | {accuracy:>8} | {seconds:>8} | {row.note} |")
    print()
    ours = f.frozen.accuracy
    if ours is not None and f.probe.accuracy is not None:
        gap = 100 * (ours - f.probe.accuracy)
        verdict = "met" if abs(gap) <= PROBE_TARGET or gap > 0 else "not met"
        print(f"headstart minus probe: {gap:+.2f} points (target: within {PROBE_TARGET:g} point): {verdict}")
    else:
        print("headstart minus probe: not measured (a part was skipped)")
    if ours is not None and f.recipe.accuracy is not None and f.recipe.seconds and f.frozen.seconds:
        cold = f.recipe.seconds / f.frozen.seconds
        warm = f.recipe.seconds / f.warm.seconds if f.warm.seconds else float("nan")
        gap = 100 * (ours - f.recipe.accuracy)
        verdict = "met" if ours >= f.recipe.accuracy and cold >= SPEED_TARGET else "not met"
        print(
            f"headstart minus recipe: {gap:+.2f} points; time recipe/headstart-cold {cold:.1f}x, "
            f"recipe/headstart-warm {warm:.1f}x (target: accuracy >= the recipe's at >= "
            f"{SPEED_TARGET:g}x less time, cold): {verdict}"
        )
    else:
        print("headstart against the recipe: not measured (a part was skipped)")
    if ours is not None and f.random.accuracy is not None:
        print(f"pretraining buys: {100 * (ours - f.random.accuracy):+.2f} points over the random-init body")
    else:
        print("pretraining buys: not measured (a part was skipped)")
    for row in f.fine:
        if ours is not None and row.accuracy is not None and row.seconds and f.frozen.seconds:
            print(
                f"{row.name}: {100 * (row.accuracy - ours):+.2f} points over the frozen body, "
                f"{row.seconds:.0f} s (frozen cold {f.frozen.seconds:.0f} s)"
            )
        else:
            print(f"{row.name}: against the frozen body not measured (a part was skipped)")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def parse_parts(text: str) -> set[str]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(PARTS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose parts among {','.join(PARTS)}; got {text!r}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--per-class", type=int, nargs="+", default=[200, 1000], help="training images per class"
    )
    parser.add_argument(
        "--parts", type=parse_parts, default=set(PARTS), help=f"comma-separated, among {','.join(PARTS)}"
    )
    parser.add_argument("--fine-tune-epochs", type=int, default=3, help="epochs of each fine-tuning")
    parser.add_argument(
        "--fine-tune-learning-rate",
        type=float,
        default=None,
        help="learning rate of each fine-tuning (default: TrainingConfig's, as `headstart train` uses)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from headstart.kernels.schemas import TrainingConfig

    d = TrainingConfig()
    command = sys.argv if argv is None else ["bench/accuracy.py", *argv]
    print(f"$ {shlex.join([os.path.relpath(sys.executable), *command])}")
    print(
        f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"body {ARCHITECTURE}; TrainingConfig defaults: {d.optimizer}, learning rate {d.learning_rate:g}, "
        f"batch {d.batch_size}, up to {d.epochs} epochs, early stopping patience {d.early_stopping_patience}"
    )
    print(f"parts: {','.join(p for p in PARTS if p in args.parts)}", flush=True)
    for per_class in args.per_class:
        run_size(per_class, args.parts, args.fine_tune_epochs, args.fine_tune_learning_rate)


if __name__ == "__main__":
    main()
