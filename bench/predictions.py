"""Benchmark: one image's prediction through the catalog service, against `model(x)` (issue 11).

Anchor: the same model, downloaded as its `.keras` file and loaded in this process, called on the
same decoded image (`model(x)`, the median of warm calls). Each side predicts the same one 224x224
photo with the pretrained EfficientNet-Lite0 ImageNet classifier (the demo's `imagenet-lite0`).

The service is a real `jupyter server` with the extension and its local Dask cluster of worker
processes, reached with `HeadstartClient.evaluations.on_files` as a notebook would. It runs in two
setups, each twice (in the order A B B A), in one run: with `c.Catalog.kept_models = 0`, every
prediction loads the model on its worker (the service before workers kept models), and with the
default, where the first prediction loads it and the next ones find it loaded on the worker they
are sent to. The cluster has one worker, warmed up by a prediction of a tiny model. Reported per
setup: the first request (the model not yet loaded; the mean of the two), and the median and slowest
of the next `--requests` of both. The anchor's traced `predict_on_batch` is printed beside `model(x)`.

Target: steady state at most 2x the anchor, and the first request no slower than the first request
of the setup that loads every time (both load the model and run its ops for the first time in the
worker; a request that loads a model its worker ran before is quicker than either).

Needs the `[pretrained]` extra. Run as `.venv/bin/python bench/predictions.py [--requests 20]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from headstart.extension.standalone import serve_catalog
from headstart.kernels.client import HeadstartClient

USER = "bench"


def photo(folder: Path) -> Path:
    import skimage.data
    from PIL import Image

    path = folder / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(path)
    return path


def anchor_seconds(model_file: Path, image: Path, calls: int) -> tuple[float, float, list[int]]:
    """Median seconds of `model(x)` and of `model.predict_on_batch(x)` (its traced function) on the
    loaded model, and the top-3 classes' indexes."""
    import keras

    from headstart.kernels.engine.images import decode_image

    model = keras.saving.load_model(model_file)
    x = decode_image(image.read_bytes(), max_pixels=50_000_000, policy="center_crop")[None]
    model(x)  # the first call of each traces
    model.predict_on_batch(x)
    called, compiled = [], []
    for _ in range(calls):
        start = time.perf_counter()
        out = np.asarray(model(x))
        called.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.predict_on_batch(x)
        compiled.append(time.perf_counter() - start)
    top = [int(i) for i in np.argsort(out[0])[::-1][:3]]
    return statistics.median(called), statistics.median(compiled), top


def run_setup(home: Path, kept: int | None, image: Path, requests: int) -> dict:
    # One worker: where a prediction runs is not what this measures (tests check the routing).
    config: dict[str, dict[str, object]] = {"JobRunner": {"n_workers": 1}}
    if kept is not None:
        config["Catalog"] = {"kept_models": kept}
    with serve_catalog(home, USER, config) as service:
        client = HeadstartClient(url=service.url, token=service.token)
        models = {m.name: m for m in client.models.list()}
        # The worker's own start (importing TensorFlow, tracing its first model) is not the model's.
        client.evaluations.on_files(models["warm-up"].id, [image])
        model = models["imagenet-lite0"]
        start = time.perf_counter()
        first = client.evaluations.on_files(model.id, [image])
        first_s = time.perf_counter() - start
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            answer = client.evaluations.on_files(model.id, [image])
            times.append(time.perf_counter() - start)
            if answer["predictions"] != first["predictions"]:
                raise SystemExit("a prediction changed between requests")
        top = [t["label"] for t in first["predictions"][0]["top"]]
    return {"first": first_s, "times": times, "top": top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="requests after the first, per setup")
    parser.add_argument("--calls", type=int, default=20, help="anchor calls of model(x)")
    args = parser.parse_args()

    from headstart.extension.manager import Catalog

    with tempfile.TemporaryDirectory(prefix="headstart-bench-") as tmp:
        home = Path(tmp)
        image = photo(home)
        catalog = Catalog(home=str(home))
        user = catalog.user(USER)
        made = catalog.models.create(
            user, name="imagenet-lite0", architecture="efficientnet_lite0", imagenet_head=True
        )
        catalog.models.create(
            user,
            name="warm-up",
            architecture="small_cnn",
            labels=["a", "b"],
            weights=None,
            options={"filters": 2},
        )
        model_file = catalog.models.download(user, made.id, home)
        catalog.close()
        anchor, compiled, top = anchor_seconds(model_file, image, args.calls)
        labels = [made.labels[i] for i in top]  # type: ignore[index]
        print(
            f"anchor model(x), one image, loaded model: {anchor * 1000:.0f} ms (median of {args.calls}; "
            f"predict_on_batch {compiled * 1000:.0f} ms); top-3 {', '.join(labels)}"
        )
        # In the order A B B A: a setup that starts right after another has just stopped finds the
        # machine busier (its first request about 0.4 s slower), and ABBA gives each setup one of each.
        setups = {"loads every time (kept_models=0)": 0, "keeps it loaded (default)": None}
        order = [*setups, *reversed(setups)]
        runs: dict[str, list[dict]] = {label: [] for label in setups}
        for label in order:
            result = run_setup(home, setups[label], image, args.requests)
            runs[label].append(result)
            if result["top"] != labels:
                raise SystemExit(f"the service's top-3 {result['top']} is not model(x)'s {labels}")
        results = {}
        for label, done in runs.items():
            times = [t for result in done for t in result["times"]]
            result = {
                "first": statistics.fmean(r["first"] for r in done),
                "median": statistics.median(times),
                "max": max(times),
            }
            results[label] = result
            firsts = " and ".join(f"{r['first'] * 1000:.0f}" for r in done)
            print(
                f"service, {label}: first {result['first'] * 1000:.0f} ms (mean of {firsts}); next "
                f"{len(times)}: median {result['median'] * 1000:.0f} ms ({result['median'] / anchor:.1f}x "
                f"model(x)), slowest {result['max'] * 1000:.0f} ms; top-3 {', '.join(labels)}"
            )
        loads, keeps = results.values()
        print(
            f"steady state: {keeps['median'] / anchor:.2f}x model(x), {keeps['median'] / compiled:.2f}x "
            f"predict_on_batch (target <= 2x model(x)); first request {keeps['first'] / loads['first']:.2f}x "
            f"the first where every request loads (target <= 1x, same work); kept vs loading every time: "
            f"{loads['median'] / keeps['median']:.1f}x faster"
        )


if __name__ == "__main__":
    main()
