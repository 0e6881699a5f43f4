"""schemathesis against `extension/openapi.yaml` on a real running catalog service (issue 3).

Target: for every operation of the description, a bounded number of generated requests gets no
500 and no response that breaks the spec (its schema or its listed status codes). The service is
a real `jupyter server` subprocess with the extension, on a free 127.0.0.1 port and a fresh
catalog, seeded over HTTP with the shapes dataset, two tiny models and one finished training, so
that generated ids often name real objects. tests/e2e/test_schemathesis_hub.py runs the same
checks through the hub's proxy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from schemathesis import GenerationMode

from headstart.extension.standalone import serve_catalog
from tests.extension.api.spec_checks import MODES, OPERATIONS, Seeded, check_operation, seed

pytestmark = pytest.mark.slow

EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, shapes_zip: bytes) -> Iterator[Seeded]:
    """The extension in its own `jupyter server` (headstart.extension.standalone), seeded over HTTP."""
    home = tmp_path_factory.mktemp("schemathesis")
    try:
        with (
            serve_catalog(home, "tester") as running,
            httpx.Client(base_url=running.url, headers=running.headers, timeout=60) as client,
        ):
            yield Seeded(running.url, running.token, seed(client, shapes_zip))
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_service_keeps_to_its_description(service: Seeded, operation: Any, mode: GenerationMode) -> None:
    check_operation(service, operation, mode, EXAMPLES[mode])
