"""A refused upload hangs up with a lingering close: `Connection: close`, then a FIN, never a reset.

Straight to the service's port; tests/e2e/test_refused_uploads.py sends the same refusals through
the hub's proxy, where a reset used to turn them into the proxy's 503 page.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

DECLARED = 2 * 1024**3
# Far more than tornado reads along with the headers, so that unread bytes wait in the socket.
IN_FLIGHT = 2**20


async def test_a_refused_upload_hangs_up_with_a_fin_not_a_reset(
    api: Any, catalog: Any, jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    catalog.max_model_bytes = 4096
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    lines = [
        f"POST {jp_base_url}headstart/models/upload?name=big HTTP/1.1",
        f"Host: 127.0.0.1:{jp_http_port}",
        *(f"{name}: {value}" for name, value in jp_auth_header.items()),
        f"Content-Length: {DECLARED}",
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"\0" * IN_FLIGHT)
    await writer.drain()
    # Read to the end: after a FIN that is the answer and then b""; a reset raises instead.
    answer = await asyncio.wait_for(reader.read(), 30)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body)["error"] == "too_large" and "4096" in json.loads(body)["detail"]
    # Only the service's sending side is shut: it still takes (and throws away) what comes.
    writer.write(b"\0" * 2**16)
    await writer.drain()
    writer.close()
    assert (await api("GET", "headstart", "me")).code == 200
