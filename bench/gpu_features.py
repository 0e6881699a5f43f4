"""Feature extraction speed of a MobileNetV2 body on one GPU (or, where there is none, the CPU).

Prints, per precision, three figures in images per second and their ratios:

  model-only   the compiled forward (accelerate.CompiledForward) on a batch already on the device: the
               ceiling that the device sets.
  end-to-end   the same forward fed from uint8 shards on disk, as FeatureCache.compute feeds it: reading
               the memory-mapped shards, padding, the uint8 copy to the device (overlapped with compute
               by host threads) and the features back to the host. Target: at least 0.5x model-only.
  predict      the reference: Keras' model.predict on a host float32 numpy array.

Not a test: it asserts nothing and exits non-zero only on errors.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REFERENCE = (
    "reference, issue 4 (one H100 80GB, batch 256, input on the GPU): torchvision MobileNetV2 bf16 autocast "
    "23,906; Keras 3 on JAX, jitted stateless_call, float32 24,684 and mixed bfloat16 41,954; "
    "model.predict on host float32 numpy 5,139 and 11,056 images/s"
)
TARGET = 0.5

EPILOG = f"""\
examples:
  KERAS_BACKEND=jax .venv/bin/python bench/gpu_features.py           # the GPU run, as recorded
  .venv/bin/python bench/gpu_features.py --images 256 --alpha 0.35   # a quick CPU smoke run

Defaults depend on the device: on a GPU 8,192 images, batch 256, both precisions, 5 rounds; on a CPU
(it prints "CPU: no GPU found") 256 images, batch 32, float32 only, 2 rounds, since bfloat16 is
emulated there and a CPU figure says nothing about a GPU. The body has random weights (weights=None):
nothing can be downloaded here, and speed does not depend on the weights. Shards are written to a
temporary folder and removed afterwards; they sit in the page cache, so disk reads are not timed.
Each figure is the median over the rounds; compilation and warm-up are excluded.

{REFERENCE}. Target: end-to-end >= {TARGET}x model-only, both measured in the same run.
"""


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images", type=int, help="images in the shards (default: 8192 on a GPU, 256 on a CPU)"
    )
    parser.add_argument(
        "--batch", type=int, help="images per compiled call (default: 256 on a GPU, 32 on a CPU)"
    )
    parser.add_argument(
        "--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier (default: 1.0)"
    )
    parser.add_argument(
        "--precisions",
        help="comma-separated: float32, mixed_bfloat16, mixed_float16 "
        "(default: float32,mixed_bfloat16 on a GPU, float32 on a CPU)",
    )
    parser.add_argument(
        "--rounds", type=int, help="timed rounds per figure (default: 5 on a GPU, 2 on a CPU)"
    )
    parser.add_argument(
        "--predict-images",
        type=int,
        help="images for the model.predict reference, rounded down to whole batches "
        "(default: min(images, 4096)); 0 skips it",
    )
    parser.add_argument(
        "--threads", type=int, help="host threads staging batches for end-to-end (default: the engine's)"
    )
    return parser.parse_args()


def median_rate(images: int, rounds: int, timed: Callable[[], float]) -> float:
    return statistics.median(images / timed() for _ in range(rounds))


def write_shards(folder: Path, count: int) -> list[str]:
    """`count` random 224x224 uint8 images as real shards, through the engine's own writer."""
    from headstart.kernels.engine.shards import IMAGE_SHAPE, ShardWriter

    pool = np.random.default_rng(0).integers(0, 256, size=(64, *IMAGE_SHAPE), dtype=np.uint8)
    writer = ShardWriter(folder, "train")
    for index in range(count):
        writer.append(pool[index % len(pool)], index % 10)
    return writer.close()


def main() -> None:
    args = parse()
    import keras

    from headstart.kernels.engine import accelerate
    from headstart.kernels.engine.architectures import build_model
    from headstart.kernels.engine.shards import SplitReader

    on_gpu = accelerate.gpu_available()
    images = args.images or (8192 if on_gpu else 256)
    batch = args.batch or (256 if on_gpu else 32)
    rounds = args.rounds or (5 if on_gpu else 2)
    precisions = (args.precisions or ("float32,mixed_bfloat16" if on_gpu else "float32")).split(",")
    predict_images = (
        (min(images, 4096) if args.predict_images is None else args.predict_images) // batch * batch
    )
    threads = args.threads or accelerate.STAGING_THREADS
    calls = max(1, images // batch)

    device = accelerate.device_description()
    print(
        f"device:   {device}" if on_gpu else "device:   CPU: no GPU found (the figures below are CPU figures)"
    )
    backend = keras.backend.backend()
    print(f"backend:  keras {keras.__version__} on {backend}, python {platform.python_version()}")
    print(
        f"body:     MobileNetV2 alpha {args.alpha}, 224x224x3 -> 1280 features, random weights "
        "(weights=None: no weights can be downloaded here; speed does not depend on them)"
    )
    print(
        f"run:      batch {batch}, {images} images in shards, {rounds} rounds (median), "
        f"{threads} staging threads, predict on {predict_images} images"
    )
    keras.utils.set_random_seed(0)
    body = build_model("mobilenet_v2", labels=None, weights=None, alpha=args.alpha)
    rows: list[tuple[str, float, float, float | None]] = []
    features: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="headstart-gpu-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        shards = write_shards(folder, images)
        print(f"shards:   {len(shards)} written in {time.perf_counter() - start:.1f} s")

        def split() -> SplitReader:
            # A fresh reader per round maps the files anew, as a new feature computation would.
            return SplitReader(folder, "train", images, shards)

        for precision in precisions:
            start = time.perf_counter()
            forward = accelerate.CompiledForward(body, batch_size=batch, precision=precision)
            first, _ = next(split().iter_batches(batch))
            on_device = forward.stage(first)
            for _ in range(3):
                accelerate.synchronize(forward.run(on_device))
            print(f"{precision}: compiled and warmed up in {time.perf_counter() - start:.1f} s")

            def model_only(
                forward: accelerate.CompiledForward = forward, on_device: object = on_device
            ) -> float:
                start = time.perf_counter()
                for _ in range(calls):
                    outputs = forward.run(on_device)
                accelerate.synchronize(outputs)
                return time.perf_counter() - start

            out = np.empty((images, int(body.output_shape[-1])), dtype=np.float32)

            def end_to_end(forward: accelerate.CompiledForward = forward, out: np.ndarray = out) -> float:
                reader = split()
                start = time.perf_counter()
                done = 0
                for rows_out in forward.stream(
                    (chunk for chunk, _ in reader.iter_batches(batch)), threads=threads
                ):
                    out[done : done + len(rows_out)] = rows_out
                    done += len(rows_out)
                elapsed = time.perf_counter() - start
                assert done == images, (done, images)
                return elapsed

            fast = median_rate(calls * batch, rounds, model_only)
            whole = median_rate(images, rounds, end_to_end)
            features[precision] = out
            predicted = None
            if predict_images:
                shape = (predict_images, *forward.input_shape)
                host = (
                    np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8).astype(np.float32)
                )
                forward.model.predict(host[:batch], batch_size=batch, verbose=0)

                def predict(model: object = forward.model, host: np.ndarray = host) -> float:
                    start = time.perf_counter()
                    model.predict(host, batch_size=batch, verbose=0)  # type: ignore[attr-defined]
                    return time.perf_counter() - start

                predicted = median_rate(predict_images, max(1, rounds // 2), predict)
            rows.append((precision, fast, whole, predicted))
            print(f"{precision}: done")

    print()
    print(f"images/s, batch {batch}, {device if on_gpu else 'CPU: no GPU found'}, keras on {backend}")
    header = "".join(
        f"{name:{align}{width}}"
        for name, align, width in [
            ("precision", "<", 16),
            ("model-only", ">", 12),
            ("end-to-end", ">", 12),
            ("e2e/model", ">", 11),
            ("predict", ">", 10),
            ("model/predict", ">", 15),
        ]
    )
    print(header)
    print("-" * len(header))
    for precision, fast, whole, predicted in rows:
        predict_cells = (
            f"{predicted:>10,.0f}{fast / predicted:>14.2f}x" if predicted else f"{'-':>10}{'-':>15}"
        )
        print(f"{precision:<16}{fast:>12,.0f}{whole:>12,.0f}{whole / fast:>10.2f}x{predict_cells}")
    for precision, fast, whole, _ in rows:
        verdict = "meets" if whole / fast >= TARGET else "misses"
        print(f"{precision}: end-to-end is {whole / fast:.2f}x model-only, {verdict} the {TARGET}x target")
    if "float32" in features and len(features) > 1:
        reference = features["float32"]
        scale = float(np.abs(reference).max()) or 1.0
        for precision, values in features.items():
            if precision != "float32":
                difference = float(np.abs(values - reference).max()) / scale
                print(
                    f"{precision} vs float32 features: max difference {difference:.2e} of the largest feature"
                )
    print(REFERENCE)


if __name__ == "__main__":
    main()
