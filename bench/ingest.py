"""Benchmark: dataset ingest (decode + resize to 224x224 uint8 shards) against Keras' own image loader.

Anchor: one pass over `keras.utils.image_dataset_from_directory(dir, image_size=(224, 224),
batch_size=32)`. Run as `.venv/bin/python bench/ingest.py [--images 1000] [--memory] [--store s3]`.

With `--store s3`, ours also runs as the ingest job does, into an artifact store: shards written
under a staging key and claimed as the dataset's, once with a local folder as the store and once
with an S3 bucket (moto's server on loopback), where the shards are uploaded as they are claimed.
It prints both ratios, how close they are, and the bytes each ingest moved.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parent / ".data"
LABELS = 10
WIDTH, HEIGHT = 640, 480
RUNS = 3


def ensure_images(count: int) -> Path:
    """Write `count` 640x480 quality-90 JPEGs in 10 label folders once; later runs reuse them."""
    root = DATA / f"jpeg-{WIDTH}x{HEIGHT}-{count}"
    done = DATA / f"jpeg-{WIDTH}x{HEIGHT}-{count}.done"
    if done.exists():
        return root
    for label in range(LABELS):
        (root / f"label-{label}").mkdir(parents=True, exist_ok=True)

    def write(index: int) -> None:
        rng = np.random.default_rng(index)
        # Random smooth content plus grain: photo-like JPEG sizes, unlike pure noise, which no real
        # upload looks like and whose entropy decoding would dominate both sides equally.
        coarse = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.normal(0, 6, (HEIGHT, WIDTH, 3)).astype(np.int16)
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"label-{index % LABELS}" / f"{index}.jpg", quality=90)

    print(f"writing {count} JPEGs under {root} (once)...", flush=True)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, range(count)))
    done.touch()
    return root


def warm_file_cache(root: Path) -> int:
    return sum(len(path.read_bytes()) for path in root.rglob("*.jpg"))


def ours_once(root: Path) -> Callable[[], None]:
    from headstart.kernels.engine.ingest import ingest
    from headstart.kernels.engine.limits import IngestLimits

    def once() -> None:
        with tempfile.TemporaryDirectory(dir=DATA) as dest:
            ingest(root, Path(dest), limits=IngestLimits())

    return once


def anchor_once(root: Path) -> Callable[[], None]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    def once() -> None:
        dataset = keras.utils.image_dataset_from_directory(
            root, image_size=(224, 224), batch_size=32, verbose=False
        )
        for _images, _labels in dataset:
            pass

    return once


def into_store(root: Path, url: str, cache: Path) -> Callable[[], Callable[[], None]]:
    """The ingest job's way: shards staged under a key of a store and claimed as a dataset's; the
    untimed clean-up it returns deletes them again."""
    from headstart.kernels.engine.ingest import ingest
    from headstart.kernels.engine.limits import IngestLimits
    from headstart.kernels.store import ArtifactStore

    store = ArtifactStore(url, cache=cache)

    def once() -> Callable[[], None]:
        with store.writing("tmp/ingest") as folder:
            ingest(root, folder, limits=IngestLimits())
        store.claim("tmp/ingest", "datasets/1")
        return lambda: store.delete("datasets/1")

    return once


def best_times(sides: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best wall time of each side; runs alternate so both sides see the same background load. A side
    that returns a callable has it called after its run, untimed (a clean-up)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(RUNS):
        for name, once in sides.items():
            start = time.perf_counter()
            after = once()
            times[name].append(time.perf_counter() - start)
            if callable(after):
                after()
    return {name: min(runs) for name, runs in times.items()}


def bare_put(root: Path, folder: Path) -> float:
    """Best time of putting one ingest's shards into the bucket with s3fs and nothing else: what the
    bytes cost the S3 server and the client on this machine, the floor of the S3 side's extra time."""
    import s3fs

    from headstart.kernels.engine.ingest import ingest
    from headstart.kernels.engine.limits import IngestLimits

    shards = folder / "bare"
    shards.mkdir()
    ingest(root, shards, limits=IngestLimits())
    files = sorted(shards.iterdir())
    fs = s3fs.S3FileSystem()
    times = []
    for run in range(RUNS):
        start = time.perf_counter()
        fs.put([str(file) for file in files], [f"bench/bare/{run}/{file.name}" for file in files])
        times.append(time.perf_counter() - start)
        fs.rm(f"bench/bare/{run}", recursive=True)
    return min(times)


def compare_stores(root: Path, images: int) -> None:
    from headstart.extension.standalone import serve_s3
    from headstart.kernels.store_remote import TRANSFERRED

    with (
        tempfile.TemporaryDirectory(dir=DATA, prefix="ingest-stores-") as folder,
        serve_s3(Path(folder) / "moto.log", buckets=["bench"]) as environment,
    ):
        os.environ.update(environment)
        sides = {
            "local": into_store(root, str(Path(folder) / "store"), Path(folder) / "unused"),
            "s3": into_store(root, "s3://bench/ingest", Path(folder) / "cache"),
            "anchor": anchor_once(root),
        }
        before = TRANSFERRED["uploaded"]
        best = best_times(sides)
        uploaded = (TRANSFERRED["uploaded"] - before) / RUNS
        bare = bare_put(root, Path(folder))
    for name, label in (("local", "ours   into a local store"), ("s3", "ours   into an S3 store")):
        print(f"{label:38s} {best[name]:6.2f} s  {images / best[name]:7.1f} images/s")
    print(f"{'anchor image_dataset_from_directory':38s} {best['anchor']:6.2f} s")
    local, s3 = best["anchor"] / best["local"], best["anchor"] / best["s3"]
    print(f"ratio anchor_time / our_time, local store: {local:.2f}x; S3 store: {s3:.2f}x")
    print(f"S3 store's ratio / local store's: {s3 / local:.2f} (target >= 0.90)")
    print(f"moved per ingest into S3: {uploaded / 2**20:.1f} MiB up (the shards)")
    print(
        f"the same shards put to the S3 server alone: {bare:.2f} s; so at best "
        f"{best['anchor'] / (best['local'] + bare) / local:.2f} of the local store's with this server "
        "on these CPUs, unless the upload overlaps the decoding"
    )


def child_peak_rss(root: Path) -> None:
    """Run one ingest in this (fresh) process and print its peak resident memory in KiB."""
    from headstart.kernels.engine.ingest import ingest
    from headstart.kernels.engine.limits import IngestLimits

    with tempfile.TemporaryDirectory(dir=DATA) as dest:
        ingest(root, Path(dest), limits=IngestLimits())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_memory() -> None:
    peaks = {}
    for count in (1_000, 4_000):
        root = ensure_images(count)
        warm_file_cache(root)
        output = subprocess.run(
            [sys.executable, __file__, "--child-rss", str(root)], check=True, capture_output=True, text=True
        ).stdout
        peaks[count] = int(output.split()[-1])
        print(f"peak RSS of ingest() at {count:>5} images: {peaks[count] / 1024:7.1f} MiB", flush=True)
    print(f"peak RSS ratio 4,000 / 1,000 images: {peaks[4_000] / peaks[1_000]:.2f}x (flat is 1.00x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000, help="how many JPEGs to ingest (default 1000)")
    parser.add_argument(
        "--memory", action="store_true", help="also measure peak RSS at 1,000 and 4,000 images"
    )
    parser.add_argument(
        "--store",
        choices=["local", "s3"],
        default="local",
        help="s3: also ingest into a local store and an S3 store (moto's server on loopback), and compare",
    )
    parser.add_argument("--child-rss", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_peak_rss(args.child_rss)
        return

    if args.memory:
        # First, while this process is small: a child inherits its parent's peak RSS across fork,
        # so measuring after Keras has loaded here would report Keras' peak, not the ingest's.
        measure_memory()
    root = ensure_images(args.images)
    size = warm_file_cache(root)
    print(
        f"{args.images} JPEGs, {WIDTH}x{HEIGHT}, quality 90, {LABELS} labels, "
        f"mean {size / args.images / 1024:.0f} KiB, {os.cpu_count()} CPUs; best of {RUNS} runs each"
    )
    # Both sides import (and so exclude) their libraries before any timed run.
    best = best_times({"ours": ours_once(root), "anchor": anchor_once(root)})
    ours, anchor = best["ours"], best["anchor"]
    for name, seconds in (
        ("ours   ingest() to uint8 shards", ours),
        ("anchor image_dataset_from_directory", anchor),
    ):
        print(f"{name:38s} {seconds:6.2f} s  {args.images / seconds:7.1f} images/s")
    print(f"ratio anchor_time / our_time: {anchor / ours:.2f}x (target >= 1.0x)")
    if args.store == "s3":
        print("through the store, as the ingest job writes:")
        compare_stores(root, args.images)


if __name__ == "__main__":
    main()
