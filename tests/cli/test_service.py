"""`--url`: the same commands against a real catalog service, with the token of $JUPYTERHUB_API_TOKEN."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli.harness import headstart


def test_commands_talk_to_the_service_at_url(tmp_path: Path) -> None:
    from headstart.extension.standalone import serve_catalog

    served, local = tmp_path / "served", tmp_path / "local"
    served.mkdir()
    with serve_catalog(served, "alice", {"JobRunner": {"n_workers": 1}}) as service:
        env = {"JUPYTERHUB_API_TOKEN": service.token}
        created = headstart(
            *("models", "create", "--name", "remote", "--architecture", "small_cnn", "--weights", "none"),
            *("--filters", "2", "--labels", "a,b", "--seed", "9", "--json", "--url", service.url),
            home=local,
            env=env,
        ).json
        assert (created["owner"], created["labels"], created["seed"]) == ("alice", ["a", "b"], 9)
        # The service has it, through its own API; the local catalog under --home was never used.
        stored = httpx.get(f"{service.url}headstart/models/{created['id']}", headers=service.headers).json()
        assert stored["seed"] == 9 and stored["name"] == "remote"
        assert not local.exists()
        listed = headstart("--url", service.url, "models", "list", "--labels", "b,a", "--json", env=env).json
        assert [m["id"] for m in listed] == [created["id"]]
        assert (
            headstart("models", "list", "--labels", "a", "--json", "--url", service.url, env=env).json == []
        )
        missing = headstart("models", "show", "99", "--url", service.url, env=env, code=2)
        assert missing.error == "error: model 99 not found"
        # Without the token the service does not know who asks.
        refused = headstart("models", "list", "--url", service.url, code=2)
        assert refused.error.startswith("error:")
