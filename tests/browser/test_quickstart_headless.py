"""The quickstart runs top to bottom with no edits and no clicks, in the headstart kernel.

nbclient executes it as a new hub user against the same hub as the browser test, with what the
spawner gives a kernel: the service's URL and the user's token. Nobody presses Start or a
decision button, so its own cells start the training and keep both.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from tests.e2e.conftest import Hub

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_quickstart_runs_top_to_bottom_with_no_edits(demo_hub: Hub, tmp_path: Path) -> None:
    demo_hub.admin.post("users/carol").raise_for_status()
    token = demo_hub.new_token("carol")
    notebook = nbformat.read(QUICKSTART, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="headstart", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEADSTART_")},
        "HOME": str(tmp_path),
        "HEADSTART_URL": demo_hub.service_url,
        "JUPYTERHUB_API_TOKEN": token,
    }
    client.execute(env=env)

    outputs = {
        index: "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    printed = "\n".join(outputs.values())
    assert "as carol" in printed and "training " in printed and "your new model:" in printed
    assert "dataset carol-fashion-" in printed
    named = next(line for line in printed.splitlines() if line.startswith("chelsea.png:"))
    assert any(cat in named for cat in ("tabby", "tiger cat", "Egyptian cat")), named
    # The widgets rendered: every widget cell's last output is a widget view.
    views = [
        cell
        for cell in notebook.cells
        if any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.get("outputs", [])
        )
    ]
    assert len(views) >= 8  # pickers, setup, two evaluations, leaderboard, sweep, benchmark
    assert "8 heads; the best" in printed
    # The benchmark printed one line per body, each with a score on carol's dataset.
    ranked = [line for line in printed.splitlines() if line.startswith("mean rank ")]
    assert len(ranked) >= 2 and all("carol-fashion-" in line for line in ranked)
    # The models it made are carol's own, private until she publishes them: the training's result
    # and the sweep's best head, both children of the model they started from.
    mine = httpx.get(
        demo_hub.service_url + "headstart/models",
        params={"mine": "true"},
        headers={"Authorization": f"token {token}"},
    ).json()["items"]
    assert [m["public"] for m in mine] == [False, False]
    assert all(m["parent_id"] is not None for m in mine) and mine[1]["parent_id"] == mine[0]["id"]
