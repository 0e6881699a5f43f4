"""Benchmark: the catalog service's peak memory while it receives 2 GB uploads (issue 3).

Target (no anchor: an absolute bound): the service's peak RSS stays under 300 MB, because uploads
stream to a temporary file and are never held whole in memory. Two uploads, each to a fresh
`jupyter server` subprocess with the extension on 127.0.0.1 (see `bench/api_load.py`):

- `POST headstart/models/upload` of a ~2 GB body with `max_model_bytes` at 1 GB: refused with 413 as soon
  as the count passes the limit, after 1 GB has streamed to disk.
- `POST headstart/datasets` of a ~2 GB zip with a 3 GB `max_archive_bytes`: stored (uncompressed) entries of
  random bytes under label folders, received whole and then refused by validation (they are not
  images), which is what this measures: receiving, not ingesting.

Payloads are generated as a stream (a zip's local headers, data and central directory written on
the fly), never held in memory. The server's peak is its `VmHWM` in /proc/<pid>/status, read after
each upload and sampled during it.

Run as `.venv/bin/python bench/upload_memory.py [--gigabytes 2]`.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx

from headstart.extension.standalone import Service, serve_catalog

TARGET_MB = 300
CHUNK = 1024 * 1024
ENTRY = 64 * CHUNK  # one zip entry per 64 MiB of random bytes


def status_kb(pid: int, field: str) -> int:
    """A `VmHWM`/`VmRSS`-style field of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def chunks(block: bytes, size: int, salt: int) -> Iterator[bytes]:
    """`size` bytes in 1 MiB chunks of `block`, each stamped with (salt, index): the same every time."""
    sent, index = 0, 0
    while sent < size:
        part = struct.pack("<QQ", salt, index) + block[16 : min(CHUNK, size - sent)]
        part = part[: min(CHUNK, size - sent)]
        sent += len(part)
        index += 1
        yield part


def stored_zip_stream(block: bytes, size: int) -> Iterator[bytes]:
    """A zip of stored (uncompressed) entries of random-looking bytes, about `size` in all, streamed.

    A local header carries its entry's CRC before the data, so each entry is generated twice from
    the same recipe (once for the CRC, once to send): more CPU, no buffering.
    """
    central, offset, number = [], 0, 0
    while offset < size:
        name = f"label-{number % 2}/blob-{number}.png".encode()
        length = min(ENTRY, size - offset)
        crc = 0
        for part in chunks(block, length, number):
            crc = zlib.crc32(part, crc)
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, length, length, len(name), 0)
        yield local + name
        yield from chunks(block, length, number)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                *(0x02014B50, 20, 20, 0, 0, 0, 0, crc, length, length, len(name), 0, 0, 0, 0, 0, offset),
            )
            + name
        )
        offset += len(local) + len(name) + length
        number += 1
    directory = b"".join(central)
    yield directory
    yield struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, number, number, len(directory), offset, 0)


def upload(
    service: Service, path: str, params: dict[str, str], body: Iterator[bytes]
) -> tuple[int, float, float]:
    """Stream `body` to the service; answer the status, seconds and the server's peak RSS in MB."""
    pid = service.process.pid
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], status_kb(pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        response = httpx.post(
            service.url + path, params=params, content=body, headers=service.headers, timeout=600
        )
        status = response.status_code
        print(f"  answer {status}: {response.text[:160]}")
    except httpx.HTTPError as error:
        # The service may hang up once it has refused the upload (413) mid-stream.
        status = -1
        print(f"  the connection ended: {type(error).__name__}: {error}")
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    hwm = status_kb(pid, "VmHWM")
    return status, seconds, max(hwm, peak[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    args = parser.parse_args()
    size = int(args.gigabytes * 2**30)
    block = os.urandom(CHUNK)
    print(f"machine: {os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as folder:
        cases = [
            (
                "model upload, refused at max_model_bytes",
                {"max_model_bytes": size // 2},
                "headstart/models/upload",
                {"name": "huge"},
                lambda: chunks(block, size, 0),
            ),
            (
                "dataset zip, received whole",
                {"max_archive_bytes": size + 2**30},
                "headstart/datasets",
                {"name": "huge"},
                lambda: stored_zip_stream(block, size),
            ),
        ]
        for number, (title, limits, path, params, body) in enumerate(cases):
            home = Path(folder) / str(number)
            home.mkdir()
            with serve_catalog(home, "user000", {"Catalog": limits}) as service:
                idle = status_kb(service.process.pid, "VmHWM") / 1024
                print(f"{title}: {size / 2**30:.2f} GiB to POST {path}, {limits}, idle peak {idle:.0f} MB")
                status, seconds, peak = upload(service, path, params, body())
                results.append((title, status, seconds, peak))
    print(f"\n{'upload':<42} {'status':>6} {'seconds':>8} {'peak RSS MB':>12}  target")
    for title, status, seconds, peak in results:
        verdict = "met" if peak < TARGET_MB else "MISSED"
        print(f"{title:<42} {status:>6} {seconds:>8.1f} {peak:>12.0f}  < {TARGET_MB} MB: {verdict}")


if __name__ == "__main__":
    main()
