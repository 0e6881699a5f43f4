"""A lingering close: hang up on a request whose body is still arriving without losing the answer.

An upload refused before its body is read (over the size limit, a bad query, no write scope) is
answered at once, and tornado then closes the socket. Two things go wrong behind a proxy such as
configurable-http-proxy, whose pooled keep-alive connection to the service carries the upload:

- tornado decides to close only after it has written the answer's headers, so the answer does not
  say `Connection: close`, and the proxy may hand the dead connection to its next request
  (`socket hang up`);
- closing a socket while unread bytes sit in its receive buffer, or keep arriving, makes the kernel
  answer with a TCP reset instead of a FIN. A peer that is still writing the body fails that write
  (`write ECONNRESET`) and drops the connection before it has read the answer waiting for it.

Either way the proxy answers its own 503 page. The cure is the one web servers call a lingering
close: answer with `Connection: close`, keep the socket open after tornado lets go of it, shut down
only its sending side (a FIN after the answer), and read and throw away what still comes until the
peer closes its side, a few seconds pass or a few MiB have come, whichever is first. Only then is
the socket closed. A proxy closes its side as soon as it has read an answer that says
`Connection: close`, so a refused 2 GiB upload costs the service the little that was in flight, not
the 2 GiB that reading and discarding the whole body would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from tornado.iostream import IOStream

# How long and how much to read after the answer. The peer has read the answer long before either
# bound in every case that matters; a client that ignores `Connection: close` and goes on sending
# gets a reset once they are reached.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 2**20
# How often to look whether tornado has written the answer and let go of its descriptor.
POLL_SECONDS = 0.01
READ_BYTES = 2**16

log = logging.getLogger(__name__)

# The lingering closes under way: the loop holds only weak references to its tasks.
_lingering: set[asyncio.Task[int]] = set()


def close_lingering(stream: IOStream) -> None:
    """Take over the closing of `stream`'s socket from tornado; call before the answer is finished.

    The socket's descriptor is duplicated, so tornado's own close (which follows the answer at once)
    releases neither the connection nor its unread bytes: the kernel sends nothing on it until the
    duplicate, the last descriptor left, is shut down and closed here.
    """
    if stream.closed() or stream.socket is None:
        return
    duplicate = socket.socket(fileno=os.dup(stream.socket.fileno()))
    duplicate.setblocking(False)
    task = asyncio.get_running_loop().create_task(_linger(stream, duplicate))
    _lingering.add(task)
    task.add_done_callback(_lingering.discard)


async def _linger(stream: IOStream, duplicate: socket.socket) -> int:
    """Send a FIN after the answer, then drain within the bounds; the bytes drained."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    drained = 0
    try:
        # The answer is in the kernel's send buffer once tornado has closed its descriptor. Shutting
        # down the sending side any earlier could cut off an answer still queued in tornado.
        while not stream.closed():
            if loop.time() >= deadline:
                return drained
            await asyncio.sleep(POLL_SECONDS)
        duplicate.shutdown(socket.SHUT_WR)
        while drained < LINGER_BYTES:
            data = await asyncio.wait_for(loop.sock_recv(duplicate, READ_BYTES), deadline - loop.time())
            if not data:  # the peer has closed its side: nothing is left to reset
                break
            drained += len(data)
    except (OSError, TimeoutError):
        pass  # the peer reset or went quiet: either way the wait is over
    finally:
        with contextlib.suppress(OSError):
            duplicate.close()
        log.debug("lingering close: %d bytes drained after the answer", drained)
    return drained
