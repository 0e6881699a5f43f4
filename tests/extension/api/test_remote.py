"""The client and the CLI against the real service: the same calls as a local catalog, over HTTP.

The client is synchronous and the server runs on the test's event loop, so each client call runs
in a worker thread while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from headstart.cli import main
from headstart.kernels.client import HeadstartClient
from headstart.kernels.errors import Conflict, NotFound
from headstart.kernels.schemas import TrainingConfig
from tests.conftest import tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture
def service_url(jp_serverapp, http_server_client, jp_http_port: int, jp_base_url: str) -> str:
    # http_server_client is what makes pytest-jupyter serve the bound socket.
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def token(jp_serverapp) -> str:
    return jp_serverapp.identity_provider.token


async def test_the_client_drives_the_service_end_to_end(
    service_url: str, token: str, catalog, me, bob, shapes_folder: Path, tmp_path: Path
) -> None:
    client = HeadstartClient(service_url, token)
    run = asyncio.to_thread
    assert await run(client.me) == me.name
    dataset = await run(lambda: client.datasets.add(shapes_folder, name="shapes"))
    assert dataset.labels == ["circle", "square", "triangle"] and sum(dataset.counts.values()) == 42
    with pytest.raises(Conflict):
        await run(lambda: client.datasets.delete("shapes"))

    model = await run(
        lambda: client.models.create(
            name="tiny", architecture="small_cnn", weights=None, options={"filters": 2}, public=False
        )
    )
    private = tiny_model(catalog, bob, name="bob's")
    assert [m.id for m in await run(client.models.list)] == [model.id]
    with pytest.raises(NotFound):
        await run(lambda: client.models.get(private.id))

    epochs: list[dict] = []
    training = await run(
        lambda: client.trainings.start(
            model.id, "shapes", TrainingConfig(epochs=2), on_epoch=epochs.append, poll=0.2, timeout=120
        )
    )
    assert training.status == "candidate" and [e["epoch"] for e in epochs] == [1, 2]
    child = await run(lambda: client.trainings.decide(training.id, "keep_both", name="child"))
    assert child.parent_id == model.id

    board = await run(lambda: client.evaluations.leaderboard("shapes"))
    assert [row.model_id for row in board if row.comparable] == [child.id]
    path = await run(lambda: client.models.download(child.id, tmp_path))
    import keras

    assert keras.saving.load_model(path).output_shape == (None, 3)
    await run(lambda: client.models.update(child.id, public=True))
    card = await run(lambda: client.models.notebook(child.id, tmp_path))
    assert card.name == f"model-{child.id}-card.ipynb" and "child" in card.read_text()
    client.close()


async def test_the_cli_talks_to_the_service_with_url_and_token(
    service_url: str, token: str, catalog, me, monkeypatch
) -> None:
    tiny_model(catalog, me, name="served")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, main, ["--url", service_url, "models", "list", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert [m["name"] for m in json.loads(result.stdout)] == ["served"]
    # The service runs in this process, and its access log goes to the stderr the runner captures:
    # the command's own error is its last line.
    missing = await asyncio.to_thread(runner.invoke, main, ["--url", service_url, "models", "show", "999"])
    assert missing.exit_code == 2 and missing.stderr.splitlines()[-1].startswith("error: model 999 not found")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "wrong")
    refused = await asyncio.to_thread(runner.invoke, main, ["--url", service_url, "models", "list"])
    assert refused.exit_code == 2 and refused.stderr.splitlines()[-1].startswith("error:")
