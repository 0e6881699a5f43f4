"""probes: the transfer benchmark's cells, one standard linear probe per (body version, dataset)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

- probes: the body's sha, the dataset, the probe's test accuracy and count, its per-class figures
  and confusion (`result`), and who asked first; one row per (body_sha, dataset_id).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body_sha", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("comparable", sa.Boolean(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("body_sha", "dataset_id"),
    )
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probes_body_sha"), ["body_sha"], unique=False)
        batch_op.create_index(batch_op.f("ix_probes_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probes_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_probes_body_sha"))
    op.drop_table("probes")
