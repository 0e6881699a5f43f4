"""The feature cache: a frozen body's outputs for every image of a dataset split, computed once.

Features are float16 arrays (float32 when their range needs it) at
`features/<body sha256>/<dataset id>/<split>.npy`, written under a temporary name and renamed, and
read back by memory mapping. Every later epoch, and every later
training of a head on the same body and dataset, reads them instead of running the body.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

FEATURE_DTYPE = np.float16
# float16 keeps about 3 significant digits between 6e-5 and 65,504. Features whose largest magnitude
# falls outside this band (an untrained body's outputs can be near 1e-11; float16 would store zeros)
# are cached as float32 instead, so the cache never silently loses the signal.
FLOAT16_RANGE = (1e-2, 6e4)
# Images per call into the body: enough to keep the device busy, small enough to bound memory.
CHUNK = 512
# Images per compiled call on a GPU. A training's batch size (often 32) leaves a GPU mostly idle, and
# features do not depend on how images are batched at inference.
GPU_BATCH = 256


class FeatureCache:
    """Cached body outputs, keyed by (body fingerprint, dataset id, split)."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = Path(root)
        self.staging = Path(staging)

    def path(self, body_sha: str, dataset_id: int | str, split: str) -> Path:
        return self.root / body_sha / str(dataset_id) / f"{split}.npy"

    def load(self, body_sha: str, dataset_id: int | str, split: str) -> np.ndarray | None:
        """The cached features, memory-mapped, or None when they were never computed."""
        path = self.path(body_sha, dataset_id, split)
        if not path.exists():
            return None
        return np.load(path, mmap_mode="r")

    def compute(
        self,
        body: object,
        images: object,
        body_sha: str,
        dataset_id: int | str,
        split: str,
        *,
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        accelerated: bool | None = None,
    ) -> np.ndarray:
        """Run `body` once over a split (a shards SplitReader) and store its outputs.

        `accelerated` runs the body through accelerate.CompiledForward (uint8 to the device, staging
        overlapped with compute, mixed precision on a GPU); None means on a GPU only, where it pays.
        """
        count = len(images)  # type: ignore[arg-type]
        dim = int(body.output_shape[-1])  # type: ignore[attr-defined]
        self.staging.mkdir(parents=True, exist_ok=True)
        partial = self.staging / f"features-{uuid.uuid4().hex}.npy"
        compact = partial.with_suffix(".f16.npy")
        try:
            out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(count, dim))
            start, largest = 0, 0.0
            for outputs in _body_outputs(body, images, batch_size, accelerated):
                out[start : start + len(outputs)] = outputs
                largest = max(largest, float(np.abs(outputs).max(initial=0.0)))
                start += len(outputs)
                if progress is not None:
                    progress(len(outputs))
            out.flush()
            final = partial
            if count and FLOAT16_RANGE[0] <= largest <= FLOAT16_RANGE[1]:
                small = np.lib.format.open_memmap(compact, mode="w+", dtype=FEATURE_DTYPE, shape=(count, dim))
                for begin in range(0, count, CHUNK):
                    small[begin : begin + CHUNK] = out[begin : begin + CHUNK]
                small.flush()
                del small
                final = compact
            del out
            target = self.path(body_sha, dataset_id, split)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, target)
        finally:
            partial.unlink(missing_ok=True)
            compact.unlink(missing_ok=True)
        return np.load(target, mmap_mode="r")


def _body_outputs(
    body: object, images: object, batch_size: int, accelerated: bool | None
) -> Iterator[np.ndarray]:
    """The body's float32 outputs over a split's images, in order, a batch or a chunk at a time."""
    from headstart.kernels.engine import accelerate

    on_gpu = accelerate.gpu_available()
    if accelerated is None:
        accelerated = on_gpu
    if accelerated:
        size = max(batch_size, GPU_BATCH) if on_gpu else batch_size
        forward = accelerate.compiled_forward(body, batch_size=size)
        yield from forward.stream(chunk for chunk, _labels in images.iter_batches(size))  # type: ignore[attr-defined]
        return
    from headstart.kernels.engine.inference import predict_batches

    for chunk, _labels in images.iter_batches(CHUNK):  # type: ignore[attr-defined]
        yield predict_batches(body, [chunk], batch_size=batch_size)
