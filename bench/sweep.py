"""Benchmark: a sweep of 8 heads on a warm feature cache, against one head's training.

Anchor: one `catalog.trainings.start` of the same model on the same dataset, with a warm feature
cache. Ours: `catalog.sweeps.start` with a grid of 8 heads (4 learning rates x 2 label smoothings)
trained side by side in one job on the same cached features. The two sides alternate, three times
each, and the ratio is that of their medians, so that a slow minute of this shared machine falls on
both. The naive way, 8 `trainings.start` one after another, is timed once. Every side is timed end
to end, candidates staged and recorded; the candidates are discarded afterwards (not timed).

The images are bench/retrain.py's (2,000 224x224 PNGs in 10 labels, written once under
bench/.data/), the body a MobileNetV2 (alpha 0.35 by default; its features are 1,280-d whatever
the alpha). Target: the sweep in at most 2x the one head's time.

Run as `.venv/bin/python bench/sweep.py [--images 2000] [--epochs 10] [--alpha 0.35]`. The script
prints; it asserts no timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrain import BATCH_SIZE, DATA, ensure_images  # the images bench/retrain.py writes

if TYPE_CHECKING:
    from headstart.extension.catalog.tables import User
    from headstart.extension.manager import Catalog

TARGET = 2.0
LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2]
LABEL_SMOOTHINGS = [0.0, 0.1]
REPEATS = 3


def one_head(catalog: Catalog, user: User, model_id: int, epochs: int) -> float:
    from headstart.kernels.schemas import TrainingConfig

    config = TrainingConfig(epochs=epochs, batch_size=BATCH_SIZE)
    start = time.perf_counter()
    training = catalog.trainings.start(user, model_id, "bench", config)
    seconds = time.perf_counter() - start
    if training.feature_cache != "hit":
        raise RuntimeError(f"expected a warm feature cache, the training says {training.feature_cache!r}")
    catalog.trainings.decide(user, training.id, "discard")
    return seconds


def sweep(catalog: Catalog, user: User, model_id: int, epochs: int) -> tuple[float, list]:
    from headstart.kernels.schemas import SweepGrid, TrainingConfig

    grid = SweepGrid(learning_rate=LEARNING_RATES, label_smoothing=LABEL_SMOOTHINGS)
    config = TrainingConfig(epochs=epochs, batch_size=BATCH_SIZE)
    start = time.perf_counter()
    done = catalog.sweeps.start(user, model_id, "bench", grid, config=config)
    seconds = time.perf_counter() - start
    if {run.feature_cache for run in done.runs} != {"hit"}:
        raise RuntimeError("expected every run of the sweep to find the feature cache warm")
    for run in done.runs:
        catalog.trainings.decide(user, run.id, "discard")
    return seconds, done.runs


def run(images: int, epochs: int, alpha: float) -> None:
    from headstart.extension.manager import Catalog

    folder = ensure_images(images)
    with tempfile.TemporaryDirectory(dir=DATA, prefix="sweep-catalog-") as home:
        catalog = Catalog(home=home)
        try:
            user = catalog.user("bench")
            print("ingesting and warming the feature cache (not timed)...", flush=True)
            catalog.datasets.add(user, folder, name="bench")
            model = catalog.models.create(
                user, name="mnv2", architecture="mobilenet_v2", weights=None, options={"alpha": alpha}
            )
            from headstart.kernels.schemas import TrainingConfig

            warm = catalog.trainings.start(user, model.id, "bench", TrainingConfig(epochs=1))
            catalog.trainings.decide(user, warm.id, "discard")
            print(
                f"{images} PNGs; MobileNetV2 alpha {alpha}, {epochs} epochs, batch {BATCH_SIZE}", flush=True
            )
            singles, sweeps = [], []
            for _ in range(REPEATS):
                singles.append(one_head(catalog, user, model.id, epochs))
                seconds, runs = sweep(catalog, user, model.id, epochs)
                sweeps.append(seconds)
            naive = sum(one_head(catalog, user, model.id, epochs) for _ in range(len(runs)))
        finally:
            catalog.close()

    single, swept = statistics.median(singles), statistics.median(sweeps)
    print()
    print(f"{'side':<62}{'seconds':>9}")
    print(f"{'anchor  one head, trainings.start, warm cache (median of 3)':<62}{single:>9.3f}")
    print(f"{'ours    sweeps.start, 8 heads side by side (median of 3)':<62}{swept:>9.3f}")
    print(f"{'naive   8 trainings.start one after another':<62}{naive:>9.3f}")
    print()
    print("runs of the last sweep, best first:")
    for rank, run_ in enumerate(runs, start=1):
        config = run_.config
        print(
            f"  #{rank}  learning_rate {config['learning_rate']:<7g} "
            f"label_smoothing {config['label_smoothing']:<4g} epochs {len(run_.epochs):>3}  "
            f"val accuracy {run_.val_accuracy:.3f}"
        )
    print()
    print(f"ratio sweep/one head: {swept / single:6.2f}x (target <= {TARGET:.0f}x)")
    print(f"ratio naive/sweep:    {naive / swept:6.2f}x (8 heads one after another, against side by side)")
    print(f"one head, each run: {', '.join(f'{s:.3f}' for s in singles)} s")
    load = os.getloadavg()[0]
    print(f"sweep, each run:    {', '.join(f'{s:.3f}' for s in sweeps)} s; load 1 min {load:.2f}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2_000, help="how many PNGs (default 2000)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every head (default 10)")
    parser.add_argument(
        "--alpha", type=float, default=0.35, help="MobileNetV2 width multiplier (default 0.35)"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    DATA.mkdir(exist_ok=True)
    run(args.images, args.epochs, args.alpha)


if __name__ == "__main__":
    main()
