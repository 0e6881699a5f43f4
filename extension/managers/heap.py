"""What the service keeps for long, out of the way of Python's cyclic garbage collector.

The service keeps large caches: the models' snapshot (`model_index`) and the dataset rankings
(`evaluations`), tens of thousands of objects each, on top of several hundred thousand from its
imports. A full collection walks every tracked object while holding the interpreter lock, so under
load each one stopped every request for 100 to 300 ms on the development machine
(docs/benchmarks.md, "Pauses"). What has just been built to be kept is therefore frozen
(`gc.freeze`): later collections skip it, and reference counting still frees it when it is dropped.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze what the process holds now, after it built something it keeps (or when it started).

    A full collection runs first, so that no garbage cycle is frozen (a frozen cycle is never
    collected). It walks only what was made since the last freeze: the new cache, and what requests
    left since then.
    """
    gc.collect()
    gc.freeze()
