"""The REST API's description agrees with its routes and with the pydantic types it answers.

The HTTP behaviour itself is tested through a real server in `tests/extension/api/`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from tornado import web

from headstart.extension.handlers import default_handlers
from headstart.extension.handlers.base import NotFoundHandler
from headstart.kernels import schemas

SPEC = yaml.safe_load((Path(__file__).resolve().parents[3] / "extension" / "openapi.yaml").read_text())
METHODS = ("get", "post", "patch", "put", "delete")


def route_template(pattern: str) -> str:
    """`/headstart/models/(\\d+)/versions` as `/headstart/models/{}/versions`."""
    return re.sub(r"\([^)]*\)", "{}", pattern).replace("\\.", ".")


def handler_operations() -> set[tuple[str, str]]:
    operations = set()
    for pattern, handler in default_handlers:
        if handler is NotFoundHandler:
            continue
        for method in METHODS:
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                operations.add((route_template(pattern), method))
    return operations


def spec_operations() -> set[tuple[str, str]]:
    return {
        (re.sub(r"\{[^}]+\}", "{}", path), method)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_every_description_has_a_route() -> None:
    handled, described = handler_operations(), spec_operations()
    assert described - handled == set(), "described in openapi.yaml but not handled"
    assert handled - described == set(), "handled but missing from openapi.yaml"
    assert len(handled) == 32


def test_every_operation_has_an_id_and_answers_json_errors() -> None:
    ids = [op["operationId"] for item in SPEC["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))
    for item in SPEC["paths"].values():
        for method, operation in item.items():
            if method in METHODS:
                assert "403" in operation["responses"], operation["operationId"]


@pytest.mark.parametrize(
    "name",
    [
        "ModelPublic",
        "ModelVersionPublic",
        "ModelCreate",
        "ModelUpdate",
        "DatasetPublic",
        "TrainingConfig",
        "TrainingCreate",
        "EpochPublic",
        "TrainingPublic",
        "JobPublic",
        "DecisionRequest",
        "EvaluationRequest",
        "EvaluationPublic",
        "LeaderboardRow",
    ],
)
def test_described_schemas_match_the_pydantic_types(name: str) -> None:
    described = SPEC["components"]["schemas"][name]
    model: type[BaseModel] = getattr(schemas, name)
    assert set(described["properties"]) == set(model.model_fields), name
    required = {field for field, info in model.model_fields.items() if info.is_required()}
    assert set(described.get("required", [])) == required, name


def test_every_reference_resolves() -> None:
    text = yaml.safe_dump(SPEC)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert name in SPEC["components"][kind], f"{kind}/{name}"
