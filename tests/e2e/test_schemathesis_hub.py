"""schemathesis against `extension/openapi.yaml` through the hub's proxy, as a notebook reaches it.

The same checks as tests/extension/api/test_schemathesis.py, with fewer examples: every generated
request goes through configurable-http-proxy to the hub's managed service, with a hub token. The
proxy turns a connection the service mishandles into its own 503 page, which only this run sees.
The requests come from a user of their own, so that generated writes never touch what other tests
on the session hub own.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from schemathesis import GenerationMode

from tests.e2e.conftest import Hub
from tests.extension.api.spec_checks import MODES, OPERATIONS, Seeded, check_operation, seed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 10}
USER = "schemathesis"


@pytest.fixture(scope="module")
def through_hub(hub: Hub, shapes_zip: bytes) -> Seeded:
    """A hub user of its own, with a full token, and a catalog seeded through the proxy."""
    hub.admin.post("users", json={"usernames": [USER]}).raise_for_status()
    token = hub.new_token(USER)
    headers = {"Authorization": f"token {token}"}
    with httpx.Client(base_url=hub.service_url, headers=headers, timeout=60) as client:
        known = seed(client, shapes_zip, dataset=f"{USER}-shapes")
    return Seeded(hub.service_url, token, known)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_service_keeps_to_its_description_through_the_proxy(
    through_hub: Seeded, operation: Any, mode: GenerationMode
) -> None:
    check_operation(through_hub, operation, mode, EXAMPLES[mode])
