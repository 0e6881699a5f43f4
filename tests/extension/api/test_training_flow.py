"""Datasets, trainings, decisions, evaluations, leaderboards and predictions over HTTP, end to end."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import staged_leftovers, tiny_model
from tests.extension.api.conftest import as_json, finished, made

pytestmark = pytest.mark.slow


async def test_datasets_upload_list_show_and_refuse_deletion(api, shapes_zip: bytes, catalog) -> None:
    added = await api(
        "POST", "headstart/datasets", body=shapes_zip, params={"name": "shapes", "description": "d"}
    )
    dataset = await made(api, added, "datasets")
    assert dataset["labels"] == ["circle", "square", "triangle"] and sum(dataset["counts"].values()) == 42

    page = as_json(await api("GET", "headstart/datasets"))
    assert page["total"] == 1 and page["items"][0]["name"] == "shapes"
    assert as_json(await api("GET", "headstart/datasets", params={"offset": "1"}))["items"] == []
    assert (await api("GET", "headstart/datasets", params={"limit": "0"})).code == 400
    for ref in ("shapes", str(dataset["id"])):
        assert as_json(await api("GET", f"headstart/datasets/{ref}"))["id"] == dataset["id"]
    missing = await api("GET", "headstart/datasets/nope")
    assert missing.code == 404 and as_json(missing)["error"] == "not_found"

    refused = await api("DELETE", "headstart/datasets/shapes")
    assert refused.code == 409 and as_json(refused)["error"] == "conflict"
    again = await api("POST", "headstart/datasets", body=shapes_zip, params={"name": "shapes"})
    assert again.code == 409
    assert (await api("POST", "headstart/datasets", body=shapes_zip)).code == 400
    assert staged_leftovers(catalog.store) == []


async def poll(api, training_id: int, until: str, seconds: float = 60) -> dict:
    """The training once its status is `until`; fails after `seconds`."""
    for _ in range(int(seconds / 0.2)):
        training = as_json(await api("GET", f"headstart/trainings/{training_id}"))
        if training["status"] == until:
            return training
        assert training["status"] == "running", training
        await asyncio.sleep(0.2)
    raise AssertionError(f"training {training_id} is still {training['status']}")


async def test_a_training_over_http_to_a_decision_an_evaluation_and_predictions(
    api, catalog, me, bob, shapes_folder: Path, tmp_path: Path
) -> None:
    catalog.datasets.add(me, shapes_folder, name="shapes")
    model = tiny_model(catalog, me)
    secret = tiny_model(catalog, bob, name="bob's")

    hidden = await api("POST", "headstart/trainings", body={"model_id": secret.id, "dataset": "shapes"})
    assert hidden.code == 404
    bad = await api(
        "POST",
        "headstart/trainings",
        body={"model_id": model.id, "dataset": "shapes", "config": {"epochs": 0}},
    )
    assert bad.code == 400 and as_json(bad)["items"][0]["field"] == "config.epochs"

    config = {"epochs": 1, "batch_size": 16}
    started = await api(
        "POST", "headstart/trainings", body={"model_id": model.id, "dataset": "shapes", "config": config}
    )
    assert started.code == 202 and as_json(started)["status"] == "running"
    training = await poll(api, as_json(started)["id"], "candidate")
    assert [e["epoch"] for e in training["epochs"]] == [1] and training["head"] == "replaced"

    listed = as_json(await api("GET", "headstart/trainings", params={"model_id": str(model.id)}))
    assert [t["id"] for t in listed] == [training["id"]]
    late = await api("POST", f"headstart/trainings/{training['id']}/cancel")
    assert late.code == 409 and as_json(late)["error"] == "conflict"
    assert (await api("GET", "headstart/trainings/999")).code == 404

    decided = await api("POST", f"headstart/trainings/{training['id']}/decision", body={"decision": "update"})
    assert decided.code == 200
    result = as_json(decided)
    assert result["training"]["status"] == "updated" and result["model"]["version"] == 2
    twice = await api("POST", f"headstart/trainings/{training['id']}/decision", body={"decision": "discard"})
    assert twice.code == 409 and as_json(twice)["error"] == "conflict"
    wrong = await api("POST", f"headstart/trainings/{training['id']}/decision", body={"decision": "maybe"})
    assert wrong.code == 400
    lineage = as_json(await api("GET", f"headstart/models/{model.id}/trainings"))
    assert [t["id"] for t in lineage] == [training["id"]]

    import keras

    download = await api("GET", f"headstart/models/{model.id}/download", params={"version": "2"})
    saved = tmp_path / "v2.keras"
    saved.write_bytes(download.body)
    assert keras.saving.load_model(saved).output_shape == (None, 3)

    asked = {"model_id": model.id, "dataset": "shapes"}
    queued = await api("POST", "headstart/evaluations", body=asked)
    assert (await finished(api, queued))["state"] == "succeeded"
    scored = await api("POST", "headstart/evaluations", body=asked)  # asked again: cached
    assert scored.code == 200
    evaluation = as_json(scored)
    assert as_json(queued)["result"] is None
    assert evaluation["model_version"] == 2 and evaluation["split"] == "test" and evaluation["count"] > 0
    unseen = await api("POST", "headstart/evaluations", body={"model_id": secret.id, "dataset": "shapes"})
    assert unseen.code == 404

    answered = await api("GET", "headstart/leaderboards/shapes")
    board = as_json(answered)
    assert [row["model_id"] for row in board] == [model.id]
    assert board[0]["rank"] == 1 and board[0]["accuracy"] == evaluation["accuracy"]
    # The board's ETag names it: a client that holds it is answered 304 until the board changes.
    etag = answered.headers["Etag"]
    unchanged = await api("GET", "headstart/leaderboards/shapes", headers={"If-None-Match": etag})
    assert unchanged.code == 304 and unchanged.body == b""
    catalog.models.update(me, model.id, name="renamed")
    changed = await api("GET", "headstart/leaderboards/shapes", headers={"If-None-Match": etag})
    assert changed.code == 200 and changed.headers["Etag"] != etag
    assert as_json(changed)[0]["model_name"] == "renamed"

    # Sent gzipped to a client that accepts it (compressed once per board), under its own ETag.
    # (decompress_response=False: tornado's client would otherwise ask for gzip whatever it is told.)
    async def board_as(accepted: str) -> Any:
        headers = {"Accept-Encoding": accepted}
        return await api("GET", "headstart/leaderboards/shapes", headers=headers, decompress_response=False)

    plain, zipped, refused = [await board_as(accepted) for accepted in ("identity", "gzip", "gzip;q=0")]
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    assert as_json(plain)[0]["model_name"] == "renamed"
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.body) == plain.body
    assert zipped.headers["Etag"] == plain.headers["Etag"][:-1] + '-gzip"'
    assert "Content-Encoding" not in refused.headers and refused.body == plain.body
    # Each encoding's ETag answers 304 for that encoding.
    held = {"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["Etag"]}
    assert (await api("GET", "headstart/leaderboards/shapes", headers=held)).code == 304
    assert (await api("GET", "headstart/leaderboards/nope")).code == 404

    images = sorted(shapes_folder.rglob("*.png"))[:2]
    body, content_type = multipart("images", images)
    predicted = await api(
        "POST",
        f"headstart/models/{model.id}/predictions",
        body=body,
        headers={"Content-Type": content_type},
        params={"top_k": "2"},
    )
    assert predicted.code == 200, predicted.body
    predictions = as_json(predicted)["predictions"]
    assert [p["file"] for p in predictions] == [image.name for image in images]
    assert all(len(p["top"]) == 2 for p in predictions)
    empty, empty_type = multipart("other", images[:1])
    nothing = await api(
        "POST", f"headstart/models/{model.id}/predictions", body=empty, headers={"Content-Type": empty_type}
    )
    assert nothing.code == 400
    assert staged_leftovers(catalog.store) == []


def multipart(field: str, files: list[Path]) -> tuple[bytes, str]:
    """A multipart/form-data body with each file under `field`, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = []
    for path in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_epochs_reach_the_api_while_the_training_runs_and_cancel_keeps_them(
    api, catalog, me, bob, shapes_folder: Path
) -> None:
    """The training runs as a job on the session's Dask workers; the API polls it as a dashboard does."""
    catalog.datasets.add(me, shapes_folder, name="shapes")
    model = tiny_model(catalog, me)
    config = {"epochs": 40, "batch_size": 8, "fine_tune_layers": "all"}
    started = await api(
        "POST", "headstart/trainings", body={"model_id": model.id, "dataset": "shapes", "config": config}
    )
    assert started.code == 202
    training_id = as_json(started)["id"]
    assert as_json(started)["job"]["state"] == "queued"

    seen, polls_with_news = 0, 0
    for _ in range(600):
        answer = as_json(await api("GET", f"headstart/trainings/{training_id}", params={"since": str(seen)}))
        assert all(e["epoch"] > seen for e in answer["epochs"])  # only what is new
        if answer["epochs"] and answer["job"]["state"] == "running":
            polls_with_news += 1
            seen = answer["epochs"][-1]["epoch"]
            assert answer["job"]["phase"] == "epochs" and answer["job"]["total"] == 40
            if polls_with_news == 2:
                break
        await asyncio.sleep(0.1)
    assert polls_with_news == 2 and answer["status"] == "running"
    assert (await api("GET", f"headstart/trainings/{training_id}", params={"since": "-1"})).code == 400

    jobs = as_json(await api("GET", "headstart/jobs", params={"unfinished": "true"}))
    assert [j["training_id"] for j in jobs] == [training_id] and jobs[0]["worker"]
    cancelled = await api("POST", f"headstart/trainings/{training_id}/cancel")
    assert cancelled.code == 202
    done = await poll(api, training_id, "cancelled")
    assert done["job"]["state"] == "cancelled" and 2 <= len(done["epochs"]) < 40
    job = as_json(await api("GET", f"headstart/jobs/{done['job']['id']}"))
    assert job["state"] == "cancelled" and job["finished_at"] is not None
    assert as_json(await api("GET", "headstart/jobs", params={"unfinished": "true"})) == []

    # Another user's job is not found, like their private models.
    from headstart.extension.catalog.database import transaction
    from headstart.extension.catalog.tables import Job

    with transaction(catalog.engine) as session:
        theirs = Job(kind="evaluate", owner_id=bob.id, state="succeeded")
        session.add(theirs)
        session.flush()
        theirs_id = theirs.id
    assert (await api("GET", f"headstart/jobs/{theirs_id}")).code == 404


async def test_a_gpu_training_on_a_cluster_without_a_gpu_worker_is_400_and_records_nothing(
    api, catalog, me, shapes_folder: Path
) -> None:
    """The session's cluster has no worker with GPU=1 and does not scale: refused before recording."""
    catalog.datasets.add(me, shapes_folder, name="shapes")
    model = tiny_model(catalog, me)
    body = {"model_id": model.id, "dataset": "shapes", "config": {"epochs": 1, "gpu": True}}
    refused = await api("POST", "headstart/trainings", body=body)
    assert refused.code == 400, refused.body
    answer = as_json(refused)
    assert answer["error"] == "invalid"
    assert answer["detail"].startswith("no worker of the cluster offers GPU=1; start one with `dask worker ")
    assert answer["detail"].endswith(" --resources GPU=1`, or train on the CPU")
    assert as_json(await api("GET", "headstart/trainings")) == []
    assert [j["kind"] for j in as_json(await api("GET", "headstart/jobs"))] == ["ingest", "create"]
    assert staged_leftovers(catalog.store) == []
