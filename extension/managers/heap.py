"""What the service keeps for long, out of the way of Python's cyclic garbage collector.

The service keeps large caches: the models' snapshot (`model_index`) and the dataset rankings
(`evaluations`), tens of thousands of objects each, on top of several hundred thousand from its
imports. A full collection walks every tracked object while holding the interpreter lock, so under
load each one stopped every request for 100 to 300 ms on the development machine
(docs/benchmarks.md, "Pauses"). What has just been built to be kept is therefore frozen
(`gc.freeze`): later collections skip it, and reference counting still frees it when it is dropped.

Only a service does it (`serve()`, called by the extension's app): a command line's process builds
a snapshot once and ends, and a collection would only add to its time.
"""

from __future__ import annotations

import gc

# Whether this process is a long-lived service whose kept caches are frozen; see serve().
serving = False


def serve() -> None:
    """Mark this process as a service: what it holds now, and each cache it builds later, is frozen."""
    global serving
    serving = True
    settle()


def settle() -> None:
    """Freeze what the process holds now, after it built something it keeps (or when it started).

    A full collection runs first, so that no garbage cycle is frozen (a frozen cycle is never
    collected). It walks only what was made since the last freeze: the new cache, and what requests
    left since then. Outside a service it does nothing.
    """
    if not serving:
        return
    gc.collect()
    gc.freeze()
