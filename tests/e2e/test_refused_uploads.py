"""Uploads that the catalog refuses before reading their body, through the real proxy (issue 9).

The service answers such an upload before the body is in and hangs up. Behind
configurable-http-proxy that used to end as the proxy's 503 page: the service's reset destroyed the
answer, or the proxy reused the dead connection for its next request. Each refusal here must come
back as the service's own JSON, and the same client's next request must work.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import MODEL_LIMIT, Hub

pytestmark = [pytest.mark.e2e]

READ = "custom:headstart:read"
ACCESS = "access:services!service=headstart"
MODEL_UPLOAD = "headstart/models/upload"
DATASETS = "headstart/datasets"
# A declared upload far over any limit, of which the client may send only this much before the
# answer has to be in: the answer must come before the body, not after it.
DECLARED = 2 * 1024**3
SENT_BEFORE_ANSWER = 64 * 2**20
BLOCK = 2**16


def client(hub: Hub, token: str) -> httpx.Client:
    return httpx.Client(base_url=hub.service_url, headers={"Authorization": f"token {token}"}, timeout=60)


@pytest.fixture(scope="module")
def alice(hub: Hub) -> Iterator[httpx.Client]:
    with client(hub, hub.tokens["alice"]) as alice:
        yield alice


@pytest.fixture(scope="module")
def reader(hub: Hub) -> Iterator[httpx.Client]:
    """Alice with a token that only reads the catalog."""
    with client(hub, hub.new_token("alice", [ACCESS, READ])) as reader:
        yield reader


def over_the_limit() -> bytes:
    return b"\0" * (MODEL_LIMIT + 2**20)


def error(response: httpx.Response, status: int, code: str) -> str:
    """The refusal's detail, once it is the catalog's own JSON error with `status`."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert body["error"] == code, body
    return str(body["detail"])


def works_next(session: httpx.Client) -> None:
    """The client's next request, on a connection the proxy hands out next, succeeds."""
    listing = session.get("headstart/models")
    assert listing.status_code == 200, listing.text[:300]
    assert "items" in listing.json()


def test_an_upload_over_the_size_limit_gets_413_with_the_limit(alice: httpx.Client) -> None:
    refused = alice.post(MODEL_UPLOAD, params={"name": "too-big"}, content=over_the_limit())
    assert str(MODEL_LIMIT) in error(refused, 413, "too_large")
    works_next(alice)


def test_an_upload_that_streams_past_the_limit_gets_413(alice: httpx.Client) -> None:
    # No Content-Length: the size check before the body cannot see it, the count while it streams does.
    streamed = (b"\0" * BLOCK for _ in range(MODEL_LIMIT // BLOCK + 32))
    refused = alice.post(MODEL_UPLOAD, params={"name": "too-big"}, content=streamed)
    assert "Content-Length" not in refused.request.headers
    assert str(MODEL_LIMIT) in error(refused, 413, "too_large")
    works_next(alice)


BAD_QUERIES = {"bad-bool": {"skip_invalid": "maybe", "name": "refused"}, "nameless": {"description": "none"}}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_dataset_upload_with_a_bad_query_gets_400(
    alice: httpx.Client, shapes_zip: bytes, query: dict[str, str]
) -> None:
    refused = alice.post(DATASETS, params=query, content=shapes_zip)
    detail = error(refused, 400, "invalid")
    assert ("skip_invalid" if "skip_invalid" in query else "name") in detail
    names = [dataset["name"] for dataset in alice.get(DATASETS, params={"limit": 500}).json()["items"]]
    assert "refused" not in names
    works_next(alice)


def test_a_read_only_tokens_upload_gets_403(reader: httpx.Client, shapes_zip: bytes) -> None:
    refused = reader.post(MODEL_UPLOAD, params={"name": "not-mine-to-add"}, content=shapes_zip)
    error(refused, 403, "forbidden")
    works_next(reader)


def test_a_declared_2_gib_upload_is_refused_before_the_body(alice: httpx.Client) -> None:
    """The answer comes while the client has sent a little of the 2 GiB, and the proxy hangs up."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        block = b"\0" * BLOCK
        while sent < DECLARED:
            # Past the bound the body stops short of its Content-Length, and the request fails.
            if sent >= SENT_BEFORE_ANSWER:
                return
            sent += BLOCK
            yield block

    refused = alice.post(
        MODEL_UPLOAD, params={"name": "huge"}, content=body(), headers={"Content-Length": str(DECLARED)}
    )
    assert str(MODEL_LIMIT) in error(refused, 413, "too_large")
    assert sent < SENT_BEFORE_ANSWER
    works_next(alice)


def test_twenty_refused_uploads_in_a_row_get_their_own_answers(
    alice: httpx.Client, reader: httpx.Client, shapes_zip: bytes
) -> None:
    statuses = []
    for turn in range(20):
        if turn % 3 == 0:
            response = alice.post(MODEL_UPLOAD, params={"name": "too-big"}, content=over_the_limit())
        elif turn % 3 == 1:
            response = alice.post(DATASETS, params=BAD_QUERIES["bad-bool"], content=shapes_zip)
        else:
            response = reader.post(DATASETS, params={"name": "refused"}, content=shapes_zip)
        statuses.append(response.status_code)
    assert 503 not in statuses
    assert statuses == [(413, 400, 403)[turn % 3] for turn in range(20)]
    works_next(alice)
    works_next(reader)
