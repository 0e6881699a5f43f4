"""The models API over HTTP: create, list, show, change, delete, upload and download, with errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.conftest import tiny_model
from tests.extension.api.conftest import as_json, finished, made, store_tmp

TINY = {"architecture": "small_cnn", "weights": None, "options": {"filters": 2}}


async def test_a_model_lives_and_dies_over_http(api, me, tmp_path: Path) -> None:
    created = await api("POST", "headstart", "models", body={"name": "tiny", "labels": ["a", "b"], **TINY})
    model = await made(api, created, "models")
    assert model["owner"] == me.name and model["labels"] == ["a", "b"] and model["version"] == 1

    page = as_json(await api("GET", "headstart", "models", params={"mine": "true", "kind": "classifier"}))
    assert page["total"] == 1 and [m["id"] for m in page["items"]] == [model["id"]]
    assert page["limit"] == 50 and page["offset"] == 0
    assert as_json(await api("GET", "headstart", "models", params={"labels": "b,a"}))["total"] == 1
    assert as_json(await api("GET", "headstart", "models", params={"labels": "x"}))["total"] == 0
    assert as_json(await api("GET", "headstart", "models", params={"public": "true"}))["total"] == 0
    assert as_json(await api("GET", "headstart", "models", params={"owner": "nobody"}))["total"] == 0
    later = as_json(await api("GET", "headstart", "models", params={"limit": "1", "offset": "1"}))
    assert later["items"] == [] and later["total"] == 1

    path = ("headstart", "models", str(model["id"]))
    assert as_json(await api("GET", *path))["name"] == "tiny"
    changed = await api("PATCH", *path, body={"name": "renamed", "public": True})
    assert changed.code == 200 and as_json(changed)["name"] == "renamed" and as_json(changed)["public"]
    versions = as_json(await api("GET", *path, "versions"))
    assert [v["version"] for v in versions] == [1]
    assert as_json(await api("GET", *path, "trainings")) == []

    download = await api("GET", *path, "download")
    assert download.code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    import keras

    saved = tmp_path / "downloaded.keras"
    saved.write_bytes(download.body)
    assert keras.saving.load_model(saved).output_shape == (None, 2)
    assert (await api("GET", *path, "download", params={"version": "7"})).code == 404

    deleted = await api("DELETE", *path)
    assert deleted.code == 204 and deleted.body == b""
    gone = await api("GET", *path)
    assert gone.code == 404 and as_json(gone)["error"] == "not_found"


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        ({"name": "x"}, "architecture"),
        ({"name": "x", "architecture": "small_cnn", "colour": "red"}, "colour"),
        ({"name": "", "architecture": "small_cnn"}, "name"),
    ],
)
async def test_a_bad_body_is_400_and_names_the_field(api, body, fragment) -> None:
    response = await api("POST", "headstart", "models", body=body)
    assert response.code == 400
    reply = as_json(response)
    assert reply["error"] == "invalid" and fragment in reply["detail"]
    if isinstance(body, dict):
        assert any(fragment in item["field"] for item in reply["items"])


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"offset": "-1"}, {"public": "maybe"}],
)
async def test_bad_list_arguments_are_400(api, params) -> None:
    response = await api("GET", "headstart", "models", params=params)
    assert response.code == 400 and as_json(response)["error"] == "invalid"


async def test_others_private_models_do_not_exist_and_public_ones_are_read_only(api, catalog, bob) -> None:
    secret = tiny_model(catalog, bob, name="secret")
    shared = tiny_model(catalog, bob, name="shared", public=True)
    for route in ("", "/versions", "/trainings", "/download"):
        response = await api("GET", f"headstart/models/{secret.id}{route}")
        assert response.code == 404, route
        assert as_json(response) == {"error": "not_found", "detail": f"model {secret.id} not found"}
    page = as_json(await api("GET", "headstart", "models"))
    assert [m["name"] for m in page["items"]] == ["shared"]
    assert (await api("GET", f"headstart/models/{shared.id}")).code == 200

    renamed = await api("PATCH", f"headstart/models/{shared.id}", body={"name": "mine now"})
    assert renamed.code == 403 and as_json(renamed)["error"] == "forbidden"
    assert (await api("DELETE", f"headstart/models/{shared.id}")).code == 403
    assert catalog.models.get(bob, shared.id).name == "shared"


async def test_an_upload_streams_into_a_model(api, catalog, me, tmp_path: Path) -> None:
    source = catalog.models.download(me, tiny_model(catalog, me, labels=["x", "y"]).id, tmp_path)
    response = await api(
        "POST",
        "headstart/models/upload",
        body=source.read_bytes(),
        params={"name": "uploaded", "labels": "x,y", "public": "true", "description": "from disk"},
    )
    model = await made(api, response, "models")
    assert (model["name"], model["labels"], model["public"]) == ("uploaded", ["x", "y"], True)
    assert store_tmp(catalog) == []

    nameless = await api("POST", "headstart/models/upload", body=source.read_bytes())
    assert nameless.code == 400 and "name" in as_json(nameless)["detail"]
    # The validation is the job: it fails with the reason, and the upload and its staging go.
    junk = await api("POST", "headstart/models/upload", body=b"not a zip", params={"name": "junk"})
    failed = await finished(api, junk)
    assert failed["state"] == "failed" and failed["error"]["error"] == "invalid", failed
    assert failed["error"]["detail"] == failed["reason"]
    assert store_tmp(catalog) == []
    assert "junk" not in [m["name"] for m in as_json(await api("GET", "headstart/models"))["items"]]


async def test_an_upload_over_the_limit_stops_with_413(api, catalog, me, tmp_path: Path) -> None:
    source = catalog.models.download(me, tiny_model(catalog, me).id, tmp_path).read_bytes()
    catalog.max_model_bytes = 4096
    assert len(source) > 4096

    declared = await api("POST", "headstart/models/upload", body=source, params={"name": "big"})
    assert declared.code == 413
    assert as_json(declared)["error"] == "too_large" and "4096" in as_json(declared)["detail"]

    async def chunks(write) -> None:  # no Content-Length: the server must count the bytes itself
        stream = io.BytesIO(source)
        while chunk := stream.read(1024):
            await write(chunk)

    streamed = await api("POST", "headstart/models/upload", body_producer=chunks, params={"name": "big"})
    assert streamed.code == 413 and as_json(streamed)["error"] == "too_large"
    assert store_tmp(catalog) == []
    assert catalog.models.list(me) and all(m.name != "big" for m in catalog.models.list(me))


async def test_public_models_have_a_card_to_view_and_copy(api, catalog, me, bob) -> None:
    import json

    shared = tiny_model(catalog, bob, name="shared", public=True)
    private = tiny_model(catalog, bob, name="private")
    page = await api("GET", f"headstart/models/{shared.id}/card")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b"shared" in page.body
    notebook = await api("GET", f"headstart/models/{shared.id}/notebook")
    assert notebook.code == 200
    assert json.loads(notebook.body)["metadata"]["headstart"]["model_id"] == shared.id
    for route in ("card", "notebook"):
        hidden = await api("GET", f"headstart/models/{private.id}/{route}")
        assert hidden.code == 404 and as_json(hidden)["error"] == "not_found"


async def test_a_public_model_downloads_for_tensorflows_runtimes(
    api, catalog, me, bob, tmp_path: Path
) -> None:
    import zipfile

    shared = tiny_model(catalog, bob, name="shared", labels=["b", "a", "c"], public=True)
    secret = tiny_model(catalog, bob, name="secret", labels=["x", "y"])
    path = f"headstart/models/{shared.id}/download"
    bogus = await api("GET", path, params={"format": "onnx"})
    assert bogus.code == 400
    assert as_json(bogus)["detail"] == "unknown format 'onnx'; choose one of keras, saved_model, tflite"
    hidden = await api("GET", f"headstart/models/{secret.id}/download", params={"format": "tflite"})
    assert hidden.code == 404 and as_json(hidden)["detail"] == f"model {secret.id} not found"
    assert as_json(await api("GET", "headstart/jobs")) == [], "a refused export queues nothing"

    for format, model_file in (("tflite", "model.tflite"), ("saved_model", "saved_model/saved_model.pb")):
        job = await finished(api, await api("GET", path, params={"format": format}))
        assert job["kind"] == "export" and job["state"] == "succeeded", job
        assert job["result"] == {
            "model_id": shared.id,
            "version": 1,
            "format": format,
            "size_bytes": job["result"]["size_bytes"],
        }
        sent = await api("GET", path, params={"format": format, "version": "1"})
        assert sent.code == 200 and sent.headers["Content-Type"] == "application/zip"
        name = f"model-{shared.id}-v1-{format}.zip"
        assert sent.headers["Content-Disposition"] == f'attachment; filename="{name}"'
        assert len(sent.body) == job["result"]["size_bytes"]
        with zipfile.ZipFile(io.BytesIO(sent.body)) as archive:
            assert model_file in archive.namelist()
            assert archive.read("labels.txt").decode().splitlines() == ["b", "a", "c"]
    kept = catalog.store.path(f"models/{shared.id}/v1/exports")
    assert sorted(p.name for p in kept.iterdir()) == ["saved_model.zip", "tflite.zip"]
    assert len(as_json(await api("GET", "headstart/jobs"))) == 2, "a kept export converts nothing again"
    assert store_tmp(catalog) == []

    catalog.models.delete(bob, shared.id)
    assert not kept.exists()
    assert (await api("GET", path, params={"format": "tflite"})).code == 404
