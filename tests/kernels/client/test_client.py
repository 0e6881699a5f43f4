"""The REST client against the real catalog service.

The service is the extension in its own `jupyter server` (headstart.extension.standalone), under
the hub's prefix `/services/headstart/`, with its jobs on the session's Dask cluster; its token
signs in as alice. What it holds besides is seeded through the local managers before it starts:
the shapes dataset, alice's and bob's tiny models, and a model over the service's size limit.
Requests go out through httpx's own transport, which keeps a copy of each (`Recorder`), so a test
can check what the client sent as well as what the service answered.

What the service never answers (a proxy's HTML page, a sign-in redirect, a closed port, silence)
comes from tiny real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import importlib
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from headstart.extension.standalone import free_port, serve_catalog
from headstart.kernels.client import HeadstartClient
from headstart.kernels.client.connection import CHUNK_BYTES, LIST_PAGE
from headstart.kernels.errors import Conflict, Forbidden, HeadstartError, Invalid, NotFound, TooLarge
from headstart.kernels.schemas import JobPublic, TrainingConfig, TrainingPublic

pytestmark = pytest.mark.slow

PREFIX = "/services/headstart/"
SHAPES = ["circle", "square", "triangle"]
PETS = ["cat", "dog"]
# Above the wide upload's 2.5 MB (three chunks) and below the too-big model's 3.8 MB.
MAX_MODEL_BYTES = 3 * 2**20
# Tiny models train an epoch on cached features in milliseconds. The most epochs, one image a batch,
# keep one running for a minute or more: long enough to be followed, timed out and cancelled (a
# cancel stops it at its next batch).
# A head on cached features fits an epoch in milliseconds: without early stopping, a thousand
# one-image-batch epochs keep a training running for seconds.
LONG = TrainingConfig(epochs=1000, batch_size=1, early_stopping_patience=None)


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Served:
    """The running service, and the ids of what was seeded before it started."""

    url: str
    token: str
    models: dict[str, int]
    bob_jobs: list[int]
    shapes_counts: dict[str, int]


def wide_model(path: Path, units: int, labels: list[str] | None) -> Path:
    """A real .keras model of about `units` * 25 kB (a wide Dense on a strided conv), written to `path`."""
    import keras

    layers = [
        keras.Input((224, 224, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(2, 3, strides=4, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(units, activation="relu"),
    ]
    if labels:
        layers.append(keras.layers.Dense(len(labels), activation="softmax"))
    keras.Sequential(layers).save(path)
    return path


@pytest.fixture(scope="module")
def wide_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wide")
    return {
        "upload": wide_model(folder / "net.keras", 100, ["a", "b"]),
        "too-big": wide_model(folder / "too-big.keras", 150, None),
    }


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    shapes_folder: Path,
    dask_scheduler: str,
    wide_files: dict[str, Path],
) -> Iterator[Served]:
    from distributed import Client, wait

    from headstart.extension.manager import Catalog
    from tests.conftest import tiny_model

    # The workers' first job imports Keras, for seconds: they do that while this process seeds.
    dask = Client(dask_scheduler, set_as_default=False)
    warming = [
        dask.submit(importlib.import_module, "keras", workers=[worker], pure=False)
        for worker in dask.scheduler_info()["workers"]
    ]
    home = tmp_path_factory.mktemp("client-catalog")
    catalog = Catalog(home=str(home))
    alice, bob = catalog.user("alice"), catalog.user("bob")
    shapes = catalog.datasets.add(alice, shapes_folder, name="shapes")
    catalog.datasets.add(bob, shapes_folder, name="my pets/v2")
    models = {
        f"pet-{n}": tiny_model(catalog, alice, name=f"pet-{n}", labels=PETS, public=True).id for n in range(5)
    }
    models["pet-private"] = tiny_model(catalog, alice, name="pet-private", labels=PETS).id
    models["vector"] = tiny_model(catalog, alice, name="vector", public=True).id
    models["shapes-net"] = tiny_model(catalog, alice, name="shapes-net", labels=SHAPES).id
    models["bob-public"] = tiny_model(catalog, bob, name="bob-public", labels=PETS, public=True).id
    models["bob-private"] = tiny_model(catalog, bob, name="bob-private", labels=SHAPES).id
    # Seeded without the service's limit, which refuses what a training of it would produce.
    models["too-big"] = catalog.models.upload(alice, wide_files["too-big"], name="too-big").id
    bob_jobs = [job.id for job in catalog.jobs.list(bob)]
    catalog.close()

    config = {
        "ServerApp": {"base_url": PREFIX},
        "Catalog": {"max_model_bytes": MAX_MODEL_BYTES, "revision_poll_seconds": 0.0},
        "JobRunner": {"cluster": "address", "address": dask_scheduler},
    }
    with serve_catalog(home, "alice", config) as running:
        assert running.url.endswith(PREFIX)
        wait(warming)
        dask.close()
        yield Served(running.url, running.token, models, bob_jobs, dict(shapes.counts))


# --- what the client sent ------------------------------------------------------------------------


@dataclass
class Sent:
    """One request as it went out; a streamed body is kept chunk by chunk, as it was sent."""

    request: httpx.Request
    streamed: bool
    chunks: list[bytes] = field(default_factory=list)
    answer: Any = None  # the JSON answer, if it was JSON

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks) if self.streamed else self.request.content

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.request.url.params)

    @property
    def path(self) -> str:
        return self.request.url.raw_path.decode().split("?")[0]


class Recorder(httpx.HTTPTransport):
    """httpx's own HTTP transport, keeping a copy of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # A body given whole is a ByteStream; a file or a generator is streamed as it is read.
        sent = Sent(request, streamed=not isinstance(request.stream, httpx.ByteStream))
        self.sent.append(sent)
        if sent.streamed:
            request.stream = _Tee(request.stream, sent.chunks)  # type: ignore[arg-type]
        response = super().handle_request(request)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            response.read()
            sent.answer = response.json()
        return response

    def to(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.request.method == method and s.path == PREFIX + path]

    @property
    def last(self) -> Sent:
        return self.sent[-1]


class _Tee(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], chunks: list[bytes]) -> None:
        self.stream, self.chunks = stream, chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.stream:
            self.chunks.append(bytes(chunk))
            yield chunk


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(served: Served, recorder: Recorder) -> Iterator[HeadstartClient]:
    # Without its trailing slash: the client must still land under the prefix.
    with HeadstartClient(served.url.rstrip("/"), served.token, transport=recorder) as client:
        yield client


def wait_until_ended(client: HeadstartClient, training_id: int, seconds: float = 60) -> TrainingPublic:
    deadline = time.monotonic() + seconds
    while (training := client.trainings.get(training_id)).status == "running":
        assert time.monotonic() < deadline, f"training {training_id} did not end"
        time.sleep(0.1)
    return training


# --- tiny real servers for what the service never answers ----------------------------------------


class CannedServer:
    """An HTTP server on 127.0.0.1 answering GETs by path with canned replies; 404 otherwise."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, dict[str, str], bytes]] = {}
        replies = self.replies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = replies.get(self.path.split("?")[0], (404, {}, b"no such page"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, status: int, body: bytes | str | dict, **headers: str) -> None:
        if isinstance(body, dict):
            body, headers = json.dumps(body), {"Content-Type": "application/json", **headers}
        self.replies[PREFIX + path] = (status, headers, body.encode() if isinstance(body, str) else body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


# --- connection, identity and configuration ------------------------------------------------------


def test_requests_carry_the_token_and_land_under_the_service_prefix(
    served: Served, client: HeadstartClient, recorder: Recorder
) -> None:
    assert client.me() == "alice"
    assert client.url == served.url
    assert str(recorder.last.request.url) == served.url + "headstart/me"
    assert recorder.last.request.headers["Authorization"] == f"token {served.token}"
    assert served.token not in repr(client)
    # The same server without the prefix has no catalog: the prefix is what reaches it.
    beside = HeadstartClient(served.url.removesuffix(PREFIX), served.token)
    with beside, pytest.raises(HeadstartError, match="404"):
        beside.me()


def test_url_and_token_come_from_the_environment(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADSTART_URL", served.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", served.token)
    with HeadstartClient() as client:
        assert client.url == served.url
        assert client.me() == "alice"
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-the-token")
    with HeadstartClient() as client, pytest.raises(Forbidden, match=r"403 Forbidden; check the token"):
        client.me()


def test_a_missing_url_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADSTART_URL", raising=False)
    with pytest.raises(Invalid, match="HEADSTART_URL"):
        HeadstartClient()


def test_without_a_token_none_is_sent_and_the_refusal_names_the_token(
    served: Served, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    refused = r"GET .*headstart/me answered 403 Forbidden; check the token"
    with HeadstartClient(served.url, transport=recorder) as client, pytest.raises(Forbidden, match=refused):
        client.me()
    assert "Authorization" not in recorder.last.request.headers


def test_a_page_size_outside_the_services_limit_is_refused_before_sending() -> None:
    for size in (0, LIST_PAGE + 1):
        with pytest.raises(Invalid, match=f"page_size must be from 1 to {LIST_PAGE}"):
            HeadstartClient("http://127.0.0.1:1/", page_size=size)


# --- errors: the service's real refusals ---------------------------------------------------------


def not_images(tmp_path: Path) -> Path:
    archive = tmp_path / "not-images.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for n in range(3):  # three a label, enough for a test split had they been images
            zipped.writestr(f"cat/{n}.jpg", b"not an image")
            zipped.writestr(f"dog/{n}.jpg", b"nor this")
    return archive


REFUSALS: dict[str, tuple[Callable[[HeadstartClient, Served, Path], Any], type, str]] = {
    "invalid": (lambda c, s, t: c.models.page(limit=LIST_PAGE + 1), Invalid, "limit must be from 1 to 500"),
    "not_found": (
        lambda c, s, t: c.models.get(s.models["bob-private"]),
        NotFound,
        "model {bob-private} not found",
    ),
    "forbidden": (
        lambda c, s, t: c.models.update(s.models["bob-public"], name="mine now"),
        Forbidden,
        "owner",
    ),
    "conflict": (lambda c, s, t: c.datasets.delete("shapes"), Conflict, "permanent"),
    "too_large": (
        lambda c, s, t: c.models.upload(t / "huge.keras", name="huge"),
        TooLarge,
        f"over the limit of {MAX_MODEL_BYTES} bytes",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_becomes_its_exception_and_changes_nothing(
    served: Served, client: HeadstartClient, tmp_path: Path, case: str
) -> None:
    action, exception, message = REFUSALS[case]
    (tmp_path / "huge.keras").write_bytes(bytes(MAX_MODEL_BYTES + 1))
    before = [m.model_dump() for m in client.models.list()]
    with pytest.raises(HeadstartError) as raised:
        action(client, served, tmp_path)
    assert type(raised.value) is exception
    assert message.format_map(served.models) in raised.value.message
    assert raised.value.detail is None
    # The same client goes on, and the refused request left the catalog as it was.
    assert [m.model_dump() for m in client.models.list()] == before
    assert client.models.get(served.models["bob-public"]).name == "bob-public"


def test_a_refusal_with_items_carries_them_as_detail(client: HeadstartClient, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="6 of 6 files are not usable images") as raised:
        client.datasets.add(not_images(tmp_path), name="not images")
    assert [item["file"] for item in raised.value.detail] == [
        f"{label}/{n}.jpg" for label in ("cat", "dog") for n in range(3)
    ]
    assert all("not an image" in item["reason"] for item in raised.value.detail)
    with pytest.raises(NotFound):
        client.datasets.get("not images")


# --- errors the service never answers ------------------------------------------------------------


NOT_THE_SERVICE = {
    "a proxy's HTML 503": (
        503,
        "<html><body>Service Unavailable</body></html>",
        {"Content-Type": "text/html"},
        r"GET {url}headstart/models/3 answered 503 Service Unavailable$",
    ),
    "a sign-in redirect": (
        302,
        "",
        {"Location": "/hub/login?next=/services/headstart/headstart/models/3"},
        r"answered 302 Found; check the token",
    ),
    "a hub's plain 403": (403, "Forbidden", {"Content-Type": "text/plain"}, r"answered 403 Forbidden; check"),
    "an internal error": (
        500,
        json.dumps({"error": "internal", "detail": "internal error"}),
        {"Content-Type": "application/json"},
        r"^internal error$",
    ),
}


@pytest.mark.parametrize("case", list(NOT_THE_SERVICE))
def test_answers_from_outside_the_catalog_name_status_and_url(canned: CannedServer, case: str) -> None:
    status, body, headers, message = NOT_THE_SERVICE[case]
    canned.answer("headstart/models/3", status, body, **headers)
    with HeadstartClient(canned.url, "token") as client, pytest.raises(HeadstartError) as raised:
        client.models.get(3)
    assert type(raised.value) is HeadstartError
    assert "\n" not in raised.value.message
    assert re.search(message.format(url=re.escape(canned.url)), raised.value.message), raised.value.message
    if body and status != 500:
        assert raised.value.detail == body


def test_an_answer_off_the_contract_is_reported(canned: CannedServer) -> None:
    canned.answer("headstart/models/3", 200, {"id": "three"})
    with HeadstartClient(canned.url) as client, pytest.raises(HeadstartError, match="not a ModelPublic"):
        client.models.get(3)


def test_an_unreachable_catalog_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}{PREFIX}"  # nothing listens there any more
    with HeadstartClient(url) as client, pytest.raises(HeadstartError) as raised:
        client.me()
    assert raised.value.message.startswith(f"cannot reach the catalog at {url}: ")


def test_a_catalog_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        # It listens, so the connection is made, but it never reads or answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}{PREFIX}"
        started = time.monotonic()
        with HeadstartClient(url, timeout=0.5) as client, pytest.raises(HeadstartError) as raised:
            client.me()
    assert raised.value.message == f"the catalog at {url} did not answer within 0.5 s"
    assert 0.5 <= time.monotonic() - started < 10


# --- models --------------------------------------------------------------------------------------


def test_list_follows_pages_and_sends_the_filters(served: Served, recorder: Recorder) -> None:
    with HeadstartClient(served.url, served.token, transport=recorder, page_size=2) as client:
        found = client.models.list(owner="alice", kind="classifier", labels=PETS, mine=True, public=True)
    # alice's public cat-and-dog classifiers: not her private one, her feature vector or bob's.
    assert [m.id for m in found] == [served.models[f"pet-{n}"] for n in range(5)]
    assert [m.name for m in found] == [f"pet-{n}" for n in range(5)]
    pages = recorder.to("GET", "headstart/models")
    assert [(p.params["limit"], p.params["offset"]) for p in pages] == [("2", "0"), ("2", "2"), ("2", "4")]
    filters = {k: v for k, v in pages[0].params.items() if k not in ("limit", "offset")}
    assert filters == {
        "owner": "alice",
        "kind": "classifier",
        "labels": "cat,dog",
        "mine": "true",
        "public": "true",
    }


def test_a_full_listing_asks_for_pages_the_service_serves(
    client: HeadstartClient, recorder: Recorder
) -> None:
    everything = client.models.list()
    assert recorder.last.params == {"limit": str(LIST_PAGE), "offset": "0"}
    items, total = client.models.page(limit=1, offset=3)
    assert recorder.last.params == {"limit": "1", "offset": "3"}
    assert ([m.id for m in items], total) == ([everything[3].id], len(everything))
    items, total = client.models.page(limit=LIST_PAGE)
    assert [m.id for m in items] == [m.id for m in everything] and total == len(everything)


def test_create_sends_a_model_create_body(
    served: Served, client: HeadstartClient, recorder: Recorder
) -> None:
    model = client.models.create(
        name="made", architecture="small_cnn", labels=PETS, weights=None, options={"filters": 4}
    )
    sent = recorder.to("POST", "headstart/models")[0].json()
    assert (sent["name"], sent["architecture"], sent["labels"]) == ("made", "small_cnn", PETS)
    assert (sent["weights"], sent["options"], sent["public"]) == (None, {"filters": 4}, False)
    assert (model.name, model.owner, model.kind, model.labels, model.public) == (
        "made",
        "alice",
        "classifier",
        PETS,
        False,
    )
    # Four filters reached the builder: more weights than the seeded two-filter pets have.
    assert model.params > client.models.get(served.models["pet-0"]).params
    assert client.models.get(model.id) == model


def test_a_request_that_breaks_the_schema_is_invalid_before_sending(
    client: HeadstartClient, recorder: Recorder
) -> None:
    with pytest.raises(Invalid, match="name"):
        client.models.create(name="", architecture="small_cnn")
    assert recorder.sent == []


def test_update_sends_only_the_fields_given(
    served: Served, client: HeadstartClient, recorder: Recorder
) -> None:
    before = client.models.get(served.models["vector"])
    after = client.models.update(before.id, description="a vector of features")
    assert recorder.last.json() == {"description": "a vector of features"}
    assert after.description == "a vector of features"
    assert (after.name, after.public, after.labels) == (before.name, before.public, before.labels)
    assert client.models.get(before.id) == after


def test_get_versions_and_delete(client: HeadstartClient) -> None:
    model = client.models.create(
        name="short-lived", architecture="small_cnn", weights=None, options={"filters": 2}
    )
    assert client.models.get(model.id).name == "short-lived"
    [version] = client.models.versions(model.id)
    assert (version.version, version.params, version.model_id) == (1, model.params, model.id)
    assert client.models.delete(model.id) is None
    with pytest.raises(NotFound):
        client.models.get(model.id)
    with pytest.raises(NotFound):
        client.models.versions(model.id)


def test_upload_streams_the_file_in_chunks_with_its_length(
    client: HeadstartClient, recorder: Recorder, wide_files: dict[str, Path]
) -> None:
    path = wide_files["upload"]
    data = path.read_bytes()
    assert len(data) > 2 * CHUNK_BYTES
    model = client.models.upload(path, name="net", labels=["a", "b"], public=True)
    [sent] = recorder.to("POST", "headstart/models/upload")
    assert sent.streamed and len(sent.chunks) >= 3 and max(len(c) for c in sent.chunks) <= CHUNK_BYTES
    assert sent.body == data
    assert sent.request.headers["Content-Length"] == str(len(data))
    assert sent.params == {"name": "net", "labels": "a,b", "description": "", "public": "true"}
    assert (model.name, model.labels, model.public, model.kind) == ("net", ["a", "b"], True, "classifier")
    # 6272 flattened features into 100 units, then 2 outputs, after a 3x3x3x2 conv.
    assert model.params == (3 * 3 * 3 * 2 + 2) + (56 * 56 * 2 * 100 + 100) + (100 * 2 + 2)


def test_upload_refuses_what_is_not_a_keras_file_without_sending(
    client: HeadstartClient, recorder: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "net.h5").write_bytes(b"x")
    with pytest.raises(Invalid, match=r"\.keras"):
        client.models.upload(tmp_path / "net.h5", name="net")
    with pytest.raises(Invalid, match="no such file"):
        client.models.upload(tmp_path / "missing.keras", name="net")
    assert recorder.sent == []


def test_download_into_a_folder_or_to_a_file(served: Served, client: HeadstartClient, tmp_path: Path) -> None:
    import keras

    model_id = served.models["pet-0"]
    path = client.models.download(model_id, tmp_path, version=1)
    assert path == tmp_path / f"model-{model_id}-v1.keras"
    assert keras.saving.load_model(path).output_shape == (None, len(PETS))
    named = client.models.download(model_id, tmp_path / "mine.keras")
    assert named.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.keras", path.name]
    with pytest.raises(NotFound):
        client.models.download(model_id, tmp_path, version=2)
    with pytest.raises(Invalid, match=r"\.keras file"):
        client.models.download(model_id, tmp_path / "model.zip")


def test_a_download_for_tensorflows_runtimes_follows_its_export(
    served: Served, client: HeadstartClient, tmp_path: Path
) -> None:
    model_id = served.models["pet-1"]
    path = client.models.download(model_id, tmp_path, format="saved_model")
    assert path == tmp_path / f"model-{model_id}-v1-saved_model.zip"
    with zipfile.ZipFile(path) as archive:
        assert "saved_model/saved_model.pb" in archive.namelist()
        assert archive.read("labels.txt").decode().splitlines() == PETS
    # The zip the first download's job made is kept: the second one is sent at once.
    again = client.models.download(model_id, tmp_path / "again.zip", format="saved_model")
    assert again.read_bytes() == path.read_bytes()
    vector = client.models.download(served.models["vector"], tmp_path / "vector.zip", format="tflite")
    with zipfile.ZipFile(vector) as archive:
        assert sorted(archive.namelist()) == ["headstart.json", "model.tflite"], (
            "a feature vector has no labels"
        )
    assert [job.kind for job in client.jobs.list()].count("export") == 2

    with pytest.raises(Invalid, match="choose one of keras, saved_model, tflite"):
        client.models.download(model_id, tmp_path, format="onnx")
    with pytest.raises(Invalid, match=r"must be written to a \.zip file, not 'model\.keras'"):
        client.models.download(model_id, tmp_path / "model.keras", format="tflite")
    with pytest.raises(NotFound):
        client.models.download(served.models["bob-private"], tmp_path / "theirs.zip", format="tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zip", path.name, "vector.zip"]


def keras_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
    return buffer.getvalue()


def test_a_served_file_name_never_leaves_the_folder(canned: CannedServer, tmp_path: Path) -> None:
    disposition = 'attachment; filename="../pets-v2.keras"'
    canned.answer("headstart/models/7/download", 200, keras_bytes(), **{"Content-Disposition": disposition})
    with HeadstartClient(canned.url) as client:
        assert client.models.download(7, tmp_path) == tmp_path / "pets-v2.keras"
    assert [p.name for p in tmp_path.iterdir()] == ["pets-v2.keras"]


def test_without_a_served_name_the_local_catalogs_is_used(
    served: Served, canned: CannedServer, tmp_path: Path
) -> None:
    # What a proxy that drops Content-Disposition leaves; the model itself is the service's answer.
    with HeadstartClient(served.url, served.token) as real:
        shown = real.models.get(served.models["pet-0"]).model_dump(mode="json")
    canned.answer("headstart/models/7/download", 200, keras_bytes())
    canned.answer("headstart/models/7", 200, {**shown, "id": 7, "version": 3})
    with HeadstartClient(canned.url) as client:
        assert client.models.download(7, tmp_path).name == "model-7-v3.keras"


def test_a_failed_download_leaves_nothing(served: Served, canned: CannedServer, tmp_path: Path) -> None:
    with HeadstartClient(served.url, served.token) as client, pytest.raises(NotFound):
        client.models.download(served.models["bob-private"], tmp_path / "model.keras")
    canned.answer("headstart/models/7/download", 200, "<html>sign in</html>", **{"Content-Type": "text/html"})
    with HeadstartClient(canned.url) as client, pytest.raises(HeadstartError, match=r"not a \.keras model"):
        client.models.download(7, tmp_path / "model.keras")
    assert list(tmp_path.iterdir()) == []


# --- datasets ------------------------------------------------------------------------------------


def test_a_folder_is_zipped_with_label_paths_and_streamed(
    client: HeadstartClient,
    recorder: Recorder,
    shapes_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "shapes"
    shutil.copytree(shapes_folder, folder)
    (folder / ".DS_Store").write_bytes(b"litter")
    images = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    reports: list[tuple[int, int]] = []
    dataset = client.datasets.add(
        folder,
        name="shapes padded",
        skip_invalid=True,
        resize_policy="pad",
        progress=lambda *r: reports.append(r),
    )
    assert (dataset.name, dataset.labels, dataset.resize_policy) == ("shapes padded", SHAPES, "pad")
    assert sum(dataset.counts.values()) == len(images) and dataset.skipped == []
    [sent] = recorder.to("POST", "headstart/datasets")
    assert sent.streamed
    with zipfile.ZipFile(io.BytesIO(sent.body)) as archive:
        assert sorted(archive.namelist()) == images
    assert sent.params == {
        "name": "shapes padded",
        "description": "",
        "skip_invalid": "true",
        "resize_policy": "pad",
    }
    assert reports and reports[-1][0] == reports[-1][1] == int(sent.request.headers["Content-Length"])
    assert list(scratch.iterdir()) == [], "the temporary zip outlived the upload"


def test_a_zip_is_sent_as_it_is(
    client: HeadstartClient, recorder: Recorder, shapes_folder: Path, tmp_path: Path
) -> None:
    import numpy as np
    from PIL import Image

    archive = Path(shutil.make_archive(str(tmp_path / "shapes"), "zip", shapes_folder))
    # Noise does not compress: one large image makes the archive span chunks.
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr("circle/noise.png", buffer.getvalue())
    dataset = client.datasets.add(archive, name="shapes zipped")
    [sent] = recorder.to("POST", "headstart/datasets")
    assert len(sent.chunks) == -(-archive.stat().st_size // CHUNK_BYTES) >= 2
    assert sent.body == archive.read_bytes()
    assert sent.params == {"name": "shapes zipped", "description": "", "skip_invalid": "false"}
    assert sum(dataset.counts.values()) == len(list(shapes_folder.rglob("*.png"))) + 1


def test_a_missing_source_is_invalid(client: HeadstartClient, recorder: Recorder, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="no such file or folder"):
        client.datasets.add(tmp_path / "nothing", name="x")
    assert recorder.sent == []


def test_datasets_list_pages_and_get_quotes_names(served: Served, recorder: Recorder) -> None:
    with HeadstartClient(served.url, served.token, transport=recorder, page_size=1) as client:
        found = client.datasets.list()
        assert [d.name for d in found][:2] == ["shapes", "my pets/v2"]
        pages = recorder.to("GET", "headstart/datasets")
        assert [p.params["offset"] for p in pages] == [str(n) for n in range(len(found))]
        shown = client.datasets.get("my pets/v2")
    assert shown == found[1] and shown.created_by == "bob"
    assert recorder.last.path == PREFIX + "headstart/datasets/my%20pets%2Fv2"


# --- trainings -----------------------------------------------------------------------------------


def test_start_polls_since_the_last_epoch_and_reports_each_once_in_order(
    served: Served, client: HeadstartClient, recorder: Recorder
) -> None:
    seen: list[int] = []
    config = TrainingConfig(epochs=3, learning_rate=0.01)
    training = client.trainings.start(
        served.models["shapes-net"], "shapes", config, on_epoch=lambda e: seen.append(e["epoch"]), poll=0.05
    )
    assert seen == [1, 2, 3]
    assert training.status == "candidate" and training.job is not None and training.job.state == "succeeded"
    [begun] = recorder.to("POST", "headstart/trainings")
    assert begun.json() == {
        "model_id": served.models["shapes-net"],
        "dataset": "shapes",
        "config": config.model_dump(),
    }
    assert [e.epoch for e in training.epochs] == [1, 2, 3]
    *polls, whole = recorder.to("GET", f"headstart/trainings/{training.id}")
    assert polls, "the training ended before its first poll"
    # Each poll asks only for the epochs after the last one reported, and gets only those.
    reported = max((e["epoch"] for e in begun.answer["epochs"]), default=0)
    for poll in polls:
        assert poll.params == ({"since": str(reported)} if reported else {})
        epochs = [e["epoch"] for e in poll.answer["epochs"]]
        assert all(n > reported for n in epochs), (reported, epochs)
        reported = max([reported, *epochs])
    assert reported == 3
    # Once it has ended, the training is fetched whole, so what start returns has every epoch.
    assert whole.params == {} and [e["epoch"] for e in whole.answer["epochs"]] == [1, 2, 3]


def test_start_raises_a_failed_trainings_error(served: Served, client: HeadstartClient) -> None:
    # The class the job failed with on the service: the job's error body names it.
    with pytest.raises(TooLarge, match=f"over the limit of {MAX_MODEL_BYTES:,} bytes") as raised:
        client.trainings.start(served.models["too-big"], "shapes", TrainingConfig(epochs=1), poll=0.05)
    failed = raised.value.detail
    assert isinstance(failed, TrainingPublic) and failed.status == "failed"
    assert failed.error == raised.value.message
    assert client.trainings.get(failed.id).status == "failed"
    assert client.jobs.get(failed.job.id).state == "failed"  # type: ignore[union-attr]


def test_start_returns_a_cancelled_training(served: Served, client: HeadstartClient) -> None:
    model_id = served.models["shapes-net"]

    def cancel_at_first_epoch(epoch: dict) -> None:
        if epoch["epoch"] == 1:
            [job] = [j for j in client.jobs.list(unfinished=True) if j.kind == "train"]
            client.trainings.cancel(job.training_id)  # type: ignore[arg-type]

    training = client.trainings.start(model_id, "shapes", LONG, on_epoch=cancel_at_first_epoch, poll=0.05)
    assert training.status == "cancelled"
    assert 1 <= len(training.epochs) < LONG.epochs
    assert training.job is not None and training.job.state == "cancelled"


def test_start_stops_waiting_at_the_timeout_and_the_training_goes_on(
    served: Served, client: HeadstartClient
) -> None:
    started = time.monotonic()
    with pytest.raises(HeadstartError, match=r"still running after 0\.3 s") as raised:
        client.trainings.start(served.models["shapes-net"], "shapes", LONG, poll=0.05, timeout=0.3)
    assert time.monotonic() - started < 10
    running = raised.value.detail
    assert isinstance(running, TrainingPublic)
    assert client.trainings.get(running.id).status == "running"
    assert client.trainings.cancel(running.id).id == running.id
    assert wait_until_ended(client, running.id).status == "cancelled"


def test_begin_sends_the_default_config(served: Served, client: HeadstartClient, recorder: Recorder) -> None:
    training = client.trainings.begin(served.models["shapes-net"], "shapes")
    assert (
        training.status == "running"
        and training.job is not None
        and training.job.state in ("queued", "running")
    )
    assert recorder.last.json() == {
        "model_id": served.models["shapes-net"],
        "dataset": "shapes",
        "config": TrainingConfig().model_dump(),
    }
    ended = wait_until_ended(client, training.id)
    # The defaults stop early on val loss: epochs run from 1, up to the default's most.
    ran = [e.epoch for e in ended.epochs]
    assert ended.status == "candidate" and ran == list(range(1, len(ran) + 1))
    assert 1 <= len(ran) <= TrainingConfig().epochs


def test_decisions_and_the_trainings_they_leave(client: HeadstartClient, recorder: Recorder) -> None:
    model = client.models.create(
        name="decided", architecture="small_cnn", labels=SHAPES, weights=None, options={"filters": 2}
    )
    one = TrainingConfig(epochs=1)
    kept, thrown, updating = (client.trainings.start(model.id, "shapes", one, poll=0.05) for _ in range(3))
    child = client.trainings.decide(kept.id, "keep_both", name="decided v2")
    assert recorder.last.json() == {"decision": "keep_both", "name": "decided v2"}
    assert child is not None and (child.name, child.parent_id, child.labels) == (
        "decided v2",
        model.id,
        SHAPES,
    )
    assert client.trainings.decide(thrown.id, "discard") is None
    assert recorder.last.json() == {"decision": "discard"}
    sent = len(recorder.sent)
    with pytest.raises(Invalid, match="unknown decision"):
        client.trainings.decide(thrown.id, "keep")
    assert len(recorder.sent) == sent
    with pytest.raises(Conflict, match="not awaiting a decision"):
        client.trainings.decide(thrown.id, "update")
    updated = client.trainings.decide(updating.id, "update")
    assert updated is not None and (updated.id, updated.version) == (model.id, 2)
    assert [v.version for v in client.models.versions(model.id)] == [1, 2]

    statuses = {t.id: t.status for t in client.trainings.list(model_id=model.id)}
    assert recorder.last.params == {"model_id": str(model.id)}
    assert statuses == {kept.id: "kept_both", thrown.id: "discarded", updating.id: "updated"}
    assert [(t.id, t.status) for t in client.trainings.history(model.id)] == [(updating.id, "updated")]
    assert all(t.owner == "alice" for t in client.trainings.list())


# --- evaluations ---------------------------------------------------------------------------------


def test_on_split_scores_a_version_and_keeps_the_score(
    served: Served, client: HeadstartClient, recorder: Recorder
) -> None:
    model_id = served.models["shapes-net"]
    scored = client.evaluations.on_split(model_id, "shapes", "val", version=1, top_k=2)
    assert recorder.last.json() == {
        "model_id": model_id,
        "dataset": "shapes",
        "split": "val",
        "version": 1,
        "top_k": 2,
    }
    assert (scored.model_id, scored.model_version, scored.split, scored.comparable) == (
        model_id,
        1,
        "val",
        True,
    )
    assert scored.count == served.shapes_counts["val"] and scored.accuracy is not None
    predictions = scored.result["predictions"]
    assert len(predictions) == scored.count
    assert all(len(p["top"]) == 2 and {t["label"] for t in p["top"]} <= set(SHAPES) for p in predictions)
    assert scored.accuracy == sum(p["true"] == p["top"][0]["label"] for p in predictions) / scored.count
    assert client.evaluations.on_split(model_id, "shapes", "val", version=1, top_k=2).id == scored.id


def test_on_files_sends_the_images_as_multipart(
    served: Served, client: HeadstartClient, recorder: Recorder, shapes_folder: Path, tmp_path: Path
) -> None:
    images = [sorted((shapes_folder / label).iterdir())[0] for label in ("circle", "square")]
    done: list[int] = []
    result = client.evaluations.on_files(served.models["shapes-net"], images, top_k=2, progress=done.append)
    assert [p["file"] for p in result["predictions"]] == [image.name for image in images]
    assert all([t["label"] for t in p["top"]] and len(p["top"]) == 2 for p in result["predictions"])
    assert done == [2]
    [sent] = recorder.to("POST", f"headstart/models/{served.models['shapes-net']}/predictions")
    assert sent.request.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.body.count(b'name="images"') == 2
    assert images[1].read_bytes() in sent.body
    assert sent.params == {"top_k": "2"}
    with pytest.raises(Invalid, match="no such image"):
        client.evaluations.on_files(served.models["shapes-net"], [tmp_path / "missing.jpg"])


def test_the_leaderboard_ranks_what_alice_may_see(served: Served, client: HeadstartClient) -> None:
    reports: list[tuple[int, int]] = []
    rows = client.evaluations.leaderboard("shapes", progress=lambda *r: reports.append(r))
    # The service answers at once, its unscored rows pending; the client asks until none is.
    assert reports[-1] == (len(rows), len(rows)) and reports == sorted(reports)
    assert not any(row.pending for row in rows)
    by_id = {row.model_id: row for row in rows}
    assert served.models["bob-private"] not in by_id
    assert {served.models["bob-public"], served.models["pet-private"], served.models["shapes-net"]} <= set(
        by_id
    )
    net = by_id[served.models["shapes-net"]]
    assert net.comparable and net.count == served.shapes_counts["test"] and net.rank is not None
    # Pets' labels are not the shapes': listed, never ranked.
    assert not by_id[served.models["pet-0"]].comparable and by_id[served.models["pet-0"]].rank is None
    ranked = [row for row in rows if row.rank is not None]
    assert [row.rank for row in ranked] == list(range(1, len(ranked) + 1))
    assert [row.accuracy for row in ranked] == sorted((row.accuracy for row in ranked), reverse=True)


# --- jobs ----------------------------------------------------------------------------------------


def test_jobs_are_the_callers_own_with_their_state(served: Served, client: HeadstartClient) -> None:
    model = client.models.create(
        name="jobbed", architecture="small_cnn", weights=None, options={"filters": 2}
    )
    jobs = client.jobs.list()
    assert all(isinstance(job, JobPublic) for job in jobs)
    assert not set(served.bob_jobs) & {job.id for job in jobs}
    assert [job.id for job in jobs] == sorted(job.id for job in jobs)
    # The seeded ingest of shapes ran in alice's name, inline: no worker, no Dask attempt.
    ingest = jobs[0]
    assert (ingest.kind, ingest.state, ingest.worker) == ("ingest", "succeeded", None)
    built = jobs[-1]
    assert (built.kind, built.state, built.attempts, built.reason) == ("create", "succeeded", 1, None)
    assert built.worker is not None and built.worker.startswith("tcp://127.0.0.1:")
    assert (
        built.started_at is not None
        and built.finished_at is not None
        and built.started_at <= built.finished_at
    )
    assert client.jobs.get(built.id) == built
    assert model.id  # the build this job made
    for job_id in served.bob_jobs:
        with pytest.raises(NotFound, match=f"job {job_id} not found"):
            client.jobs.get(job_id)


def test_unfinished_jobs_are_the_queued_and_running_ones(served: Served, client: HeadstartClient) -> None:
    training = client.trainings.begin(served.models["shapes-net"], "shapes", LONG)
    assert training.job is not None
    deadline = time.monotonic() + 60
    while (job := client.jobs.get(training.job.id)).phase != "epochs":
        assert time.monotonic() < deadline, f"the training's job never reached its epochs: {job}"
        time.sleep(0.05)
    assert (job.kind, job.state, job.training_id, job.attempts) == ("train", "running", training.id, 1)
    assert job.worker is not None and job.worker.startswith("tcp://127.0.0.1:")
    assert [j.id for j in client.jobs.list(unfinished=True)] == [job.id]
    client.trainings.cancel(training.id)
    assert wait_until_ended(client, training.id).status == "cancelled"
    assert client.jobs.list(unfinished=True) == []
    assert client.jobs.get(job.id).state == "cancelled"
    assert job.id in [j.id for j in client.jobs.list()]


# --- import cost ---------------------------------------------------------------------------------


def test_importing_the_client_does_not_import_keras() -> None:
    code = (
        "import sys, headstart.kernels.client;"
        "print(','.join(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_sweep_runs_over_http_and_a_bad_grid_is_400(served: Served, client: HeadstartClient) -> None:
    steps: list[tuple[str | None, int, int]] = []
    done = client.sweeps.start(
        served.models["shapes-net"],
        "shapes",
        {"learning_rate": [1e-3, 1e-2], "batch_size": [4, 8]},
        config=TrainingConfig(epochs=2),
        progress=lambda *step: steps.append(step),
        poll=0.05,
    )
    assert done.job is not None and done.job.state == "succeeded" and len(done.runs) == 4
    assert {(r.config["learning_rate"], r.config["batch_size"]) for r in done.runs} == {
        (lr, b) for lr in (1e-3, 1e-2) for b in (4, 8)
    }
    assert steps and steps[-1][0] == "epochs"
    scores = [run.val_accuracy for run in done.runs]
    assert scores == sorted(scores, reverse=True)
    assert client.sweeps.get(done.id).runs == done.runs and done.id in [s.id for s in client.sweeps.list()]
    before = len(client.trainings.list())
    over = [round(1e-4 * (n + 1), 6) for n in range(65)]
    with pytest.raises(Invalid, match="65 heads, over the limit of 64"):
        client.sweeps.begin(served.models["shapes-net"], "shapes", {"learning_rate": over})
    with pytest.raises(Invalid, match="needs at least one list"):
        client.sweeps.begin(served.models["shapes-net"], "shapes", {})
    with pytest.raises(NotFound):
        client.sweeps.get(10_000)
    assert len(client.trainings.list()) == before


def test_the_benchmark_over_http_shows_only_visible_models(served: Served, client: HeadstartClient) -> None:
    steps: list[tuple[int, int]] = []
    table = client.benchmark.matrix(["shapes", "my pets/v2"], progress=lambda *s: steps.append(s), poll=0.1)
    assert table.datasets == ["shapes", "my pets/v2"] and table.pending == 0
    assert steps[-1][0] == steps[-1][1] == sum(len(row.cells) for row in table.rows)
    shown = {m.name for row in table.rows for m in row.models}
    # Every tiny model shares one body; bob's private one is not among the models that name it.
    assert {"shapes-net", "vector", "bob-public", "pet-private"} <= shown and "bob-private" not in shown
    assert all(cell.state == "scored" for row in table.rows for cell in row.cells)
    row = table.rows[0]
    cell = client.benchmark.cell(row.body[:10], "my pets/v2")
    assert cell.body == row.body and cell.cell.accuracy == row.cells[1].accuracy
    assert len(cell.per_class) == len(cell.labels) == len(cell.confusion)
    with pytest.raises(Invalid, match="at least 6"):
        client.benchmark.cell("abc", "shapes")
    with pytest.raises(NotFound, match="body"):
        client.benchmark.cell("f" * 64 if not row.body.startswith("f") else "0" * 64, "shapes")
    with pytest.raises(NotFound, match="dataset"):
        client.benchmark.table(["no-such-data"])
