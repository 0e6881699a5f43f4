"""Benchmark: scoring 8 re-trained variants of one body on a dataset, against scoring one.

The variants are 9 heads of one frozen MobileNetV2 body (a sweep, every run kept as a model of its
own), so they share the body: the platform runs it once over the test split (through the feature
cache) and then each variant's head. Three sides, each on a cold test-split cache:

- anchor: `evaluations.on_split` of one variant: the body's pass over the test split and one head;
- ours: `evaluations.leaderboard` of the 8 other variants: one job, the body once, 8 heads;
- naive: the 8 scored as whole models, each loaded from its downloaded `.keras` file and run with
  `model.predict` over the test images, the body included every time.

Targets: ours at most 1.5x the anchor. The images are bench/retrain.py's (written once under
bench/.data/). Run as `.venv/bin/python bench/leaderboard.py [--images 2000] [--alpha 1.0]`. The script
prints; it asserts no timing.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrain import DATA, ensure_images  # the images bench/retrain.py writes

TARGET = 1.5
VARIANTS = 8


def run(images: int, alpha: float) -> None:
    import keras

    from headstart.extension.manager import Catalog
    from headstart.kernels.engine.shards import DatasetReader
    from headstart.kernels.schemas import SweepGrid, TrainingConfig

    folder = ensure_images(images)
    with tempfile.TemporaryDirectory(dir=DATA, prefix="leaderboard-catalog-") as home:
        catalog = Catalog(home=home)
        try:
            user = catalog.user("bench")
            print("ingesting, and training 9 variants of one body as a sweep (not timed)...", flush=True)
            dataset = catalog.datasets.add(user, folder, name="bench")
            base = catalog.models.create(
                user, name="mnv2", architecture="mobilenet_v2", weights=None, options={"alpha": alpha}
            )
            rates = [float(rate) for rate in np.geomspace(1e-4, 1e-1, VARIANTS + 1)]
            swept = catalog.sweeps.start(
                user, base.id, "bench", SweepGrid(learning_rate=rates), config=TrainingConfig(epochs=3)
            )
            variants = []
            for rank, run_ in enumerate(swept.runs, start=1):
                kept = catalog.trainings.decide(user, run_.id, "keep_both", name=f"variant {rank}")
                variants.append(kept.id)  # type: ignore[union-attr]
            test = DatasetReader(catalog.store.path(f"datasets/{dataset.id}")).split("test")
            cache = catalog.store.path("features")

            def forget_test_features() -> None:
                for path in cache.glob(f"*/{dataset.id}/test.npy"):
                    path.unlink()

            print(f"{images} PNGs, test split {len(test)}; MobileNetV2 alpha {alpha}", flush=True)
            forget_test_features()
            start = time.perf_counter()
            one = catalog.evaluations.on_split(user, variants[0], "bench", "test")
            anchor = time.perf_counter() - start

            forget_test_features()
            start = time.perf_counter()
            board = catalog.evaluations.leaderboard(user, "bench")
            ours = time.perf_counter() - start
            scored = {row.model_id: row.accuracy for row in board}

            inputs, truth = test.read(np.arange(len(test)))
            start = time.perf_counter()
            naive_scores = {}
            with tempfile.TemporaryDirectory(dir=DATA, prefix="leaderboard-whole-") as scratch:
                for model_id in variants[1:]:
                    path = catalog.models.download(user, model_id, Path(scratch) / f"{model_id}.keras")
                    model = keras.saving.load_model(path, compile=False)
                    probabilities = model.predict(inputs, batch_size=32, verbose=0)
                    naive_scores[model_id] = float((probabilities.argmax(-1) == truth).mean())
            naive = time.perf_counter() - start
        finally:
            catalog.close()

    agree = all(abs(naive_scores[m] - (scored[m] or 0.0)) < 1e-9 for m in variants[1:])
    print()
    print(f"{'side':<68}{'seconds':>9}")
    print(f"{'anchor  one variant: evaluations.on_split, cold test-split cache':<68}{anchor:>9.2f}")
    print(f"{'ours    8 variants: evaluations.leaderboard, one body pass':<68}{ours:>9.2f}")
    print(f"{'naive   8 variants as whole models: load the .keras, model.predict':<68}{naive:>9.2f}")
    print()
    print(f"ratio ours/anchor:  {ours / anchor:6.2f}x (target <= {TARGET}x)")
    print(f"ratio naive/ours:   {naive / ours:6.2f}x")
    print(
        f"accuracies: one variant {one.accuracy:.3f}; the 8 on the board and as whole models "
        f"{'agree' if agree else 'DIFFER'}"
    )
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2_000, help="how many PNGs (default 2000)")
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width (default 1.0)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # the naive side's retracing notes
    DATA.mkdir(exist_ok=True)
    run(args.images, args.alpha)


if __name__ == "__main__":
    main()
