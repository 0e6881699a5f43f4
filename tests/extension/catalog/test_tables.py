"""The tables against the API's types: every field the API shows is a column the service stores."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest
from pydantic import BaseModel
from sqlmodel import SQLModel

from headstart.extension.catalog import tables
from headstart.kernels import schemas

# Each API type, its table, and the fields it adds that are not the table's own columns.
PAIRS = [
    (schemas.ModelPublic, tables.CatalogModel, {"owner", "params", "size_bytes", "input_contract"}),
    (schemas.ModelVersionPublic, tables.ModelVersion, set()),
    (schemas.DatasetPublic, tables.Dataset, {"created_by"}),
    (schemas.EpochPublic, tables.Epoch, set()),
    (schemas.JobPublic, tables.Job, set()),
    # A training's status, error and end are derived from its stage and its job's run state.
    (schemas.TrainingPublic, tables.Training, {"owner", "epochs", "job", "status", "error", "finished_at"}),
    (schemas.EvaluationPublic, tables.Evaluation, set()),
]


def _literal(annotation: object) -> tuple | None:
    """The values of a Literal annotation, also inside `X | None`; None for any other type."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for part in get_args(annotation):
        if get_origin(part) is Literal:
            return get_args(part)
    return None


@pytest.mark.parametrize(("public", "table", "added"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_every_api_field_has_its_column(
    public: type[BaseModel], table: type[SQLModel], added: set[str]
) -> None:
    columns = set(table.__table__.columns.keys())  # type: ignore[attr-defined]
    missing = set(public.model_fields) - added - columns
    assert missing == set(), f"{public.__name__} shows fields that {table.__name__} does not store"
    assert added.isdisjoint(columns), "a field listed as added is a column after all"


@pytest.mark.parametrize(("public", "table", "added"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_a_status_column_defaults_to_a_value_its_literal_names(
    public: type[BaseModel], table: type[SQLModel], added: set[str]
) -> None:
    typed = {name: _literal(field.annotation) for name, field in public.model_fields.items()}
    for name, values in typed.items():
        if values is None or name in added:
            continue
        field = table.model_fields[name]
        if field.is_required():
            continue
        default = field.default
        assert default is None or default in values, f"{table.__name__}.{name} defaults to {default!r}"


def test_the_api_types_are_plain_pydantic() -> None:
    """The client and the widgets import the API's types: they carry nothing of the database."""
    shown = [value for value in vars(schemas).values() if isinstance(value, type)]
    assert not [kind.__name__ for kind in shown if issubclass(kind, SQLModel)]
    assert "sqlalchemy" not in schemas.__dict__ and "sqlmodel" not in schemas.__dict__


def test_a_row_that_breaks_its_literal_is_refused_by_the_api_type() -> None:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    row = tables.Job(id=1, key="k", kind="train", state="lost", owner_id=1, created_at=datetime.now(UTC))
    with pytest.raises(ValidationError, match="state"):
        schemas.JobPublic(**row.model_dump())
