"""models.label_set: the sorted label set, so lists filter models by type in SQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label_set", sa.String(), nullable=True))
        batch_op.create_index(batch_op.f("ix_models_label_set"), ["label_set"], unique=False)
    models = sa.table("models", sa.column("id", sa.Integer), sa.column("labels", sa.JSON), sa.column("label_set", sa.String))
    connection = op.get_bind()
    for model_id, labels in connection.execute(sa.select(models.c.id, models.c.labels)).all():
        if isinstance(labels, str):
            labels = json.loads(labels)
        if labels:
            key = "\x1f".join(sorted(labels))
            connection.execute(models.update().where(models.c.id == model_id).values(label_set=key))


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_label_set"))
        batch_op.drop_column("label_set")
