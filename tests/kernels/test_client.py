"""The REST client against an in-process fake of the API (docs/api.md), through httpx's MockTransport."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headstart.kernels.client import HeadstartClient
from headstart.kernels.client.connection import CHUNK_BYTES
from headstart.kernels.errors import Conflict, Forbidden, HeadstartError, Invalid, NotFound, TooLarge
from headstart.kernels.schemas import (
    DecisionRequest,
    EvaluationRequest,
    ModelCreate,
    ModelPublic,
    TrainingConfig,
    TrainingCreate,
)

BASE = "http://catalog.test/services/headstart/"
PREFIX = "/services/headstart/"
STAMP = "2024-05-01T12:00:00"

Handler = Callable[[httpx.Request], httpx.Response]


def model_json(model_id: int, **fields: Any) -> dict:
    return {
        "id": model_id,
        "name": f"model {model_id}",
        "owner": "alice",
        "kind": "classifier",
        "labels": ["cat", "dog"],
        "public": False,
        "version": 1,
        "params": 1000,
        "size_bytes": 4000,
        "created_at": STAMP,
        "updated_at": STAMP,
        **fields,
    }


def dataset_json(dataset_id: int, name: str = "pets") -> dict:
    return {
        "id": dataset_id,
        "name": name,
        "labels": ["cat", "dog"],
        "counts": {"train": 8, "val": 1, "test": 1},
        "skipped": [],
        "created_by": "alice",
        "created_at": STAMP,
    }


def training_json(training_id: int, status: str = "running", epochs: int = 0, **fields: Any) -> dict:
    return {
        "id": training_id,
        "model_id": 7,
        "model_version": 1,
        "dataset_id": 2,
        "config": TrainingConfig().model_dump(),
        "status": status,
        "owner": "alice",
        "created_at": STAMP,
        "finished_at": None if status == "running" else STAMP,
        "epochs": [{"epoch": n, "loss": 1.0 / n, "accuracy": 0.5} for n in range(1, epochs + 1)],
        **fields,
    }


def evaluation_json(model_id: int) -> dict:
    return {
        "id": 1,
        "model_id": model_id,
        "model_version": 1,
        "dataset_id": 2,
        "split": "test",
        "accuracy": 0.9,
        "loss": 0.3,
        "count": 10,
        "result": {},
        "created_at": STAMP,
    }


def answer(status: int, body: Any = None, **kwargs: Any) -> httpx.Response:
    return (
        httpx.Response(status, json=body, **kwargs) if body is not None else httpx.Response(status, **kwargs)
    )


class FakeCatalog:
    """The API as a dict of routes, `(method, path under the prefix)` to a handler; it records requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, handler: Handler | Any) -> None:
        self.routes[method, path] = handler if callable(handler) else lambda _: answer(200, handler)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.raw_path.decode().startswith(PREFIX), request.url
        path = request.url.raw_path.decode().split("?")[0][len(PREFIX) :]
        handler = self.routes.get((request.method, path))
        if handler is None:
            return answer(404, {"error": "not_found", "detail": f"no route {request.method} {path}"})
        return handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


class StreamingTransport(httpx.MockTransport):
    """MockTransport without its `request.read()`, so the handler sees the body as it is streamed."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.handler(request)  # type: ignore[return-value]


@pytest.fixture
def fake() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def client(fake: FakeCatalog) -> Iterator[HeadstartClient]:
    with HeadstartClient(BASE.rstrip("/"), "s3cret", transport=httpx.MockTransport(fake)) as client:
        yield client


@pytest.fixture
def streaming(fake: FakeCatalog) -> Iterator[HeadstartClient]:
    with HeadstartClient(BASE, "s3cret", transport=StreamingTransport(fake)) as client:
        yield client


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def read_stream(request: httpx.Request) -> list[bytes]:
    """The chunks of a streamed request body, asserting that nobody read it whole before."""
    assert isinstance(request.stream, httpx.SyncByteStream)
    assert not isinstance(request.stream, httpx.ByteStream), "the body was read into memory"
    return list(request.stream)


# --- connection, identity and configuration ----------------------------------------------------


def test_requests_carry_the_token_and_land_under_the_service_prefix(
    fake: FakeCatalog, client: HeadstartClient
) -> None:
    fake.on("GET", "headstart/me", {"name": "alice"})
    assert client.me() == "alice"
    assert str(fake.last.url) == BASE + "headstart/me"
    assert fake.last.headers["Authorization"] == "token s3cret"
    assert "s3cret" not in repr(client)


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, fake: FakeCatalog) -> None:
    monkeypatch.setenv("HEADSTART_URL", "http://env.test/services/headstart/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "from-env")
    fake.on("GET", "headstart/me", {"name": "bob"})
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(200, {"name": "bob"})

    with HeadstartClient(transport=httpx.MockTransport(handler)) as client:
        assert client.me() == "bob"
    assert str(seen[0].url) == "http://env.test/services/headstart/headstart/me"
    assert seen[0].headers["Authorization"] == "token from-env"


def test_a_missing_url_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADSTART_URL", raising=False)
    with pytest.raises(Invalid, match="HEADSTART_URL"):
        HeadstartClient()


def test_without_a_token_no_authorization_is_sent(monkeypatch: pytest.MonkeyPatch, fake: FakeCatalog) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    fake.on("GET", "headstart/me", {"name": "me"})
    with HeadstartClient(BASE, transport=httpx.MockTransport(fake)) as client:
        client.me()
    assert "Authorization" not in fake.last.headers


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "exception"),
    [
        (400, "invalid", Invalid),
        (404, "not_found", NotFound),
        (403, "forbidden", Forbidden),
        (413, "too_large", TooLarge),
        (409, "conflict", Conflict),
        (500, "internal", HeadstartError),
    ],
)
def test_error_bodies_become_the_matching_exception(
    fake: FakeCatalog, client: HeadstartClient, status: int, code: str, exception: type
) -> None:
    items = [{"file": "cat/1.jpg", "reason": "not an image"}]
    fake.on(
        "GET",
        "headstart/models/3",
        lambda _: answer(status, {"error": code, "detail": "it went wrong", "items": items}),
    )
    with pytest.raises(HeadstartError) as raised:
        client.models.get(3)
    assert type(raised.value) is exception
    assert raised.value.message == "it went wrong"
    assert raised.value.detail == items


def test_an_error_without_items_has_no_detail(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on(
        "DELETE",
        "headstart/datasets/pets",
        lambda _: answer(409, {"error": "conflict", "detail": "permanent"}),
    )
    with pytest.raises(Conflict, match="permanent") as raised:
        client.datasets.delete("pets")
    assert raised.value.detail is None


def test_a_proxys_html_502_names_the_status_and_url(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/models/3", lambda _: httpx.Response(502, html="<html>Bad Gateway</html>"))
    with pytest.raises(HeadstartError) as raised:
        client.models.get(3)
    assert type(raised.value) is HeadstartError
    assert "502" in raised.value.message
    assert BASE + "headstart/models/3" in raised.value.message


def test_a_hub_refusal_points_at_the_token(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/me", lambda _: httpx.Response(403, text="Forbidden"))
    with pytest.raises(HeadstartError, match=r"403.*token"):
        client.me()


def test_an_unreachable_catalog_is_named(client: HeadstartClient, fake: FakeCatalog) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    fake.on("GET", "headstart/me", refuse)
    with pytest.raises(HeadstartError, match=f"cannot reach the catalog at {re.escape(BASE)}"):
        client.me()


def test_a_timeout_says_the_catalog_did_not_answer(client: HeadstartClient, fake: FakeCatalog) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.on("GET", "headstart/me", slow)
    with pytest.raises(HeadstartError, match="did not answer"):
        client.me()


def test_an_answer_off_the_contract_is_reported(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/models/3", {"id": "three"})
    with pytest.raises(HeadstartError, match="not a ModelPublic"):
        client.models.get(3)


# --- models ----------------------------------------------------------------------------------


def test_list_follows_pages_and_sends_the_filters(fake: FakeCatalog, client: HeadstartClient) -> None:
    models = [model_json(n, public=True) for n in range(1, 6)]

    def page(request: httpx.Request) -> httpx.Response:
        # The service caps pages below what the client asks for; the client must keep going.
        offset = int(request.url.params["offset"])
        served = models[offset : offset + 2]
        return answer(200, {"items": served, "total": len(models), "limit": 2, "offset": offset})

    fake.on("GET", "headstart/models", page)
    found = client.models.list(
        owner="alice", kind="classifier", labels=["cat", "dog"], mine=True, public=True
    )
    assert [m.id for m in found] == [1, 2, 3, 4, 5]
    assert all(isinstance(m, ModelPublic) for m in found)
    assert [int(r.url.params["offset"]) for r in fake.requests] == [0, 2, 4]
    params = fake.requests[0].url.params
    assert (params["owner"], params["kind"], params["labels"]) == ("alice", "classifier", "cat,dog")
    assert (params["mine"], params["public"]) == ("true", "true")


def test_page_leaves_unset_filters_out(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/models", {"items": [model_json(4)], "total": 9, "limit": 1, "offset": 3})
    items, total = client.models.page(limit=1, offset=3)
    assert ([m.id for m in items], total) == ([4], 9)
    assert dict(fake.last.url.params) == {"limit": "1", "offset": "3"}


def test_create_sends_a_model_create_body(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/models", lambda r: answer(201, model_json(8, name=body_of(r)["name"])))
    model = client.models.create(
        name="pets", architecture="small_cnn", labels=["cat", "dog"], weights=None, options={"filters": 4}
    )
    assert model.name == "pets"
    sent = body_of(fake.last)
    assert ModelCreate.model_validate(sent).options == {"filters": 4}
    assert sent["weights"] is None and sent["labels"] == ["cat", "dog"] and sent["public"] is False


def test_a_request_that_breaks_the_schema_is_invalid_before_sending(
    fake: FakeCatalog, client: HeadstartClient
) -> None:
    with pytest.raises(Invalid, match="name"):
        client.models.create(name="", architecture="small_cnn")
    assert fake.requests == []


def test_update_sends_only_the_fields_given(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("PATCH", "headstart/models/5", model_json(5, public=True))
    assert client.models.update(5, public=True).public is True
    assert body_of(fake.last) == {"public": True}


def test_get_versions_and_delete(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/models/5", model_json(5))
    version = {"version": 1, "params": 10, "size_bytes": 40, "kind": "classifier", "model_id": 5}
    fake.on("GET", "headstart/models/5/versions", [{**version, "created_at": STAMP}])
    fake.on("DELETE", "headstart/models/5", lambda _: httpx.Response(204))
    assert client.models.get(5).id == 5
    assert [v.version for v in client.models.versions(5)] == [1]
    assert client.models.delete(5) is None
    assert fake.last.method == "DELETE"


def test_upload_streams_the_file_in_chunks(
    fake: FakeCatalog, streaming: HeadstartClient, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256)
    file = tmp_path / "net.keras"
    file.write_bytes(data)
    chunks: list[bytes] = []

    def upload(request: httpx.Request) -> httpx.Response:
        chunks.extend(read_stream(request))
        return answer(201, model_json(9, name=request.url.params["name"]))

    fake.on("POST", "headstart/models/upload", upload)
    model = streaming.models.upload(file, name="net", labels=["a", "b"], public=True)
    assert model.id == 9
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= CHUNK_BYTES
    assert b"".join(chunks) == data
    request = fake.last
    assert request.headers["Content-Length"] == str(len(data))
    assert dict(request.url.params) == {"name": "net", "labels": "a,b", "description": "", "public": "true"}


def test_upload_refuses_what_is_not_a_keras_file_without_sending(
    fake: FakeCatalog, client: HeadstartClient, tmp_path: Path
) -> None:
    (tmp_path / "net.h5").write_bytes(b"x")
    with pytest.raises(Invalid, match=r"\.keras"):
        client.models.upload(tmp_path / "net.h5", name="net")
    with pytest.raises(Invalid, match="no such file"):
        client.models.upload(tmp_path / "missing.keras", name="net")
    assert fake.requests == []


def keras_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
    return buffer.getvalue()


def test_download_into_a_folder_takes_the_served_name(
    fake: FakeCatalog, client: HeadstartClient, tmp_path: Path
) -> None:
    served = keras_bytes()
    fake.on(
        "GET",
        "headstart/models/7/download",
        lambda _: httpx.Response(
            200, content=served, headers={"Content-Disposition": 'attachment; filename="../pets-v2.keras"'}
        ),
    )
    path = client.models.download(7, tmp_path, version=2)
    assert path == tmp_path / "pets-v2.keras"
    assert path.read_bytes() == served
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets-v2.keras"]
    assert dict(fake.last.url.params) == {"version": "2"}


def test_download_without_a_served_name_uses_the_local_catalogs(
    fake: FakeCatalog, client: HeadstartClient, tmp_path: Path
) -> None:
    fake.on("GET", "headstart/models/7/download", lambda _: httpx.Response(200, content=keras_bytes()))
    fake.on("GET", "headstart/models/7", model_json(7, version=3))
    assert client.models.download(7, tmp_path).name == "model-7-v3.keras"
    assert client.models.download(7, tmp_path / "mine.keras") == tmp_path / "mine.keras"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.keras", "model-7-v3.keras"]


@pytest.mark.parametrize(
    "served",
    [
        answer(404, {"error": "not_found", "detail": "model 7 not found"}),
        httpx.Response(200, content=b"<html>sign in</html>"),
    ],
)
def test_a_failed_download_leaves_nothing(
    fake: FakeCatalog, client: HeadstartClient, tmp_path: Path, served: httpx.Response
) -> None:
    fake.on("GET", "headstart/models/7/download", lambda _: served)
    with pytest.raises(HeadstartError):
        client.models.download(7, tmp_path / "model.keras")
    assert list(tmp_path.iterdir()) == []


# --- datasets --------------------------------------------------------------------------------


def test_a_folder_is_zipped_with_label_paths_and_streamed(
    fake: FakeCatalog, streaming: HeadstartClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pets"
    for relative, data in {
        "cat/1.jpg": b"c1",
        "cat/2.jpg": b"c2",
        "dog/1.jpg": b"d1",
        ".DS_Store": b"x",
    }.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    received: dict[str, bytes] = {}

    def add(request: httpx.Request) -> httpx.Response:
        with zipfile.ZipFile(io.BytesIO(b"".join(read_stream(request)))) as archive:
            received.update({name: archive.read(name) for name in archive.namelist()})
        return answer(201, dataset_json(3, request.url.params["name"]))

    fake.on("POST", "headstart/datasets", add)
    reports: list[tuple[int, int]] = []
    dataset = streaming.datasets.add(
        folder, name="pets", skip_invalid=True, resize_policy="pad", progress=lambda *r: reports.append(r)
    )
    assert dataset.name == "pets"
    assert received == {"cat/1.jpg": b"c1", "cat/2.jpg": b"c2", "dog/1.jpg": b"d1"}
    assert dict(fake.last.url.params) == {
        "name": "pets",
        "description": "",
        "skip_invalid": "true",
        "resize_policy": "pad",
    }
    assert reports and reports[-1][0] == reports[-1][1] == int(fake.last.headers["Content-Length"])
    assert list(scratch.iterdir()) == [], "the temporary zip outlived the upload"


def test_a_zip_is_sent_as_it_is(fake: FakeCatalog, streaming: HeadstartClient, tmp_path: Path) -> None:
    archive = tmp_path / "pets.zip"
    archive.write_bytes(b"PK" + bytes(CHUNK_BYTES + 10))
    chunks: list[bytes] = []

    def add(request: httpx.Request) -> httpx.Response:
        chunks.extend(read_stream(request))
        return answer(201, dataset_json(3))

    fake.on("POST", "headstart/datasets", add)
    streaming.datasets.add(archive, name="pets")
    assert len(chunks) == 2 and b"".join(chunks) == archive.read_bytes()
    assert "resize_policy" not in fake.last.url.params


def test_a_missing_source_is_invalid(client: HeadstartClient, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="no such file or folder"):
        client.datasets.add(tmp_path / "nothing", name="x")


def test_datasets_list_pages_and_get_quotes_names(fake: FakeCatalog, client: HeadstartClient) -> None:
    datasets = [dataset_json(n, f"set {n}") for n in range(1, 4)]
    fake.on(
        "GET",
        "headstart/datasets",
        lambda r: answer(
            200, {"items": datasets[int(r.url.params["offset"]) :][:2], "total": 3, "limit": 2, "offset": 0}
        ),
    )
    fake.on("GET", "headstart/datasets/my%20pets%2Fv2", dataset_json(4, "my pets/v2"))
    assert [d.id for d in client.datasets.list()] == [1, 2, 3]
    assert client.datasets.get("my pets/v2").name == "my pets/v2"


# --- trainings -------------------------------------------------------------------------------


def test_start_polls_and_reports_each_epoch_once_in_order(fake: FakeCatalog, client: HeadstartClient) -> None:
    # What each poll sees: epochs appear one or two at a time, then the candidate is ready.
    polls = iter([("running", 1), ("running", 1), ("running", 3), ("candidate", 4)])
    fake.on("POST", "headstart/trainings", lambda _: answer(202, training_json(11)))
    fake.on("GET", "headstart/trainings/11", lambda _: answer(200, training_json(11, *next(polls))))
    seen: list[int] = []
    config = TrainingConfig(epochs=4, learning_rate=0.01)
    training = client.trainings.start(
        7, "pets", config, on_epoch=lambda e: seen.append(e["epoch"]), poll=0, timeout=5
    )
    assert seen == [1, 2, 3, 4]
    assert training.status == "candidate"
    sent = TrainingCreate.model_validate(body_of(fake.requests[0]))
    assert (sent.model_id, sent.dataset, sent.config) == (7, "pets", config)
    assert len(fake.requests) == 5


def test_start_raises_a_failed_trainings_error(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/trainings", lambda _: answer(202, training_json(12)))
    fake.on(
        "GET", "headstart/trainings/12", training_json(12, "failed", error="model is over the size limit")
    )
    with pytest.raises(Invalid, match="over the size limit"):
        client.trainings.start(7, 2, poll=0, timeout=5)


def test_start_returns_a_cancelled_training(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/trainings", lambda _: answer(202, training_json(13)))
    fake.on("GET", "headstart/trainings/13", training_json(13, "cancelled", epochs=2))
    assert client.trainings.start(7, 2, poll=0, timeout=5).status == "cancelled"


def test_start_stops_waiting_at_the_timeout(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/trainings", lambda _: answer(202, training_json(14)))
    fake.on("GET", "headstart/trainings/14", training_json(14))
    with pytest.raises(HeadstartError, match="still running"):
        client.trainings.start(7, 2, poll=0.01, timeout=0.05)


def test_begin_sends_the_default_config(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/trainings", lambda _: answer(202, training_json(15)))
    assert client.trainings.begin(7, 2).status == "running"
    assert body_of(fake.last) == {"model_id": 7, "dataset": 2, "config": TrainingConfig().model_dump()}


def test_decide_returns_the_model_or_none(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on(
        "POST",
        "headstart/trainings/11/decision",
        {"training": training_json(11, "kept_both"), "model": model_json(20)},
    )
    fake.on(
        "POST", "headstart/trainings/12/decision", {"training": training_json(12, "discarded"), "model": None}
    )
    model = client.trainings.decide(11, "keep_both", name="pets v2")
    assert model is not None and model.id == 20
    assert DecisionRequest.model_validate(body_of(fake.last)).name == "pets v2"
    assert client.trainings.decide(12, "discard") is None
    assert body_of(fake.last) == {"decision": "discard"}
    with pytest.raises(Invalid, match="unknown decision"):
        client.trainings.decide(12, "keep")


def test_training_reads_and_cancel(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("GET", "headstart/trainings", [training_json(1), training_json(2)])
    fake.on("GET", "headstart/models/7/trainings", [training_json(1, "updated")])
    fake.on("POST", "headstart/trainings/1/cancel", lambda _: answer(202, training_json(1)))
    assert [t.id for t in client.trainings.list(model_id=7)] == [1, 2]
    assert dict(fake.last.url.params) == {"model_id": "7"}
    assert [t.status for t in client.trainings.history(7)] == ["updated"]
    assert client.trainings.cancel(1).id == 1


# --- evaluations -----------------------------------------------------------------------------


def test_on_split_sends_an_evaluation_request(fake: FakeCatalog, client: HeadstartClient) -> None:
    fake.on("POST", "headstart/evaluations", lambda _: answer(201, evaluation_json(7)))
    assert client.evaluations.on_split(7, "pets", "val", version=2, top_k=5).accuracy == 0.9
    sent = EvaluationRequest.model_validate(body_of(fake.last))
    assert (sent.model_id, sent.dataset, sent.split, sent.version, sent.top_k) == (7, "pets", "val", 2, 5)


def test_on_files_sends_the_images_as_multipart(
    fake: FakeCatalog, client: HeadstartClient, tmp_path: Path
) -> None:
    images = []
    for name in ("a.jpg", "b.png"):
        images.append(tmp_path / name)
        images[-1].write_bytes(name.encode())
    fake.on("POST", "headstart/models/7/predictions", {"predictions": [{"file": "a.jpg"}, {"file": "b.png"}]})
    done: list[int] = []
    result = client.evaluations.on_files(7, images, top_k=2, progress=done.append)
    assert len(result["predictions"]) == 2 and done == [2]
    request = fake.last
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert request.content.count(b'name="images"') == 2
    assert b'filename="b.png"' in request.content and b"\r\nb.png\r\n" in request.content
    assert dict(request.url.params) == {"top_k": "2"}
    with pytest.raises(Invalid, match="no such image"):
        client.evaluations.on_files(7, [tmp_path / "missing.jpg"])


def test_leaderboard(fake: FakeCatalog, client: HeadstartClient) -> None:
    row = {
        "rank": 1,
        "model_id": 7,
        "model_name": "pets",
        "owner": "alice",
        "version": 1,
        "public": True,
        "comparable": True,
        "accuracy": 0.9,
        "loss": 0.2,
        "count": 10,
    }
    fake.on("GET", "headstart/leaderboards/pets", [row])
    reports: list[tuple[int, int]] = []
    rows = client.evaluations.leaderboard("pets", progress=lambda *r: reports.append(r))
    assert [r.model_id for r in rows] == [7] and reports == [(1, 1)]


# --- import cost -----------------------------------------------------------------------------


def test_importing_the_client_does_not_import_keras() -> None:
    code = (
        "import sys, headstart.kernels.client;"
        "print(','.join(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
