"""revisions: one counter per family of kept rows (models, datasets, evaluations), not one for all

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

With one counter, every ingest and every score threw away the models' snapshot and every kept
leaderboard. Each family starts at the old counter's number, so no reader's kept work matches it.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FAMILIES = ("datasets", "evaluations", "models")


def upgrade() -> None:
    number = op.get_bind().execute(sa.text("SELECT number FROM revision WHERE id = 1")).scalar() or 0
    table = op.create_table(
        "revisions",
        sa.Column("family", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("family"),
    )
    op.bulk_insert(table, [{"family": family, "number": number} for family in FAMILIES])
    op.drop_table("revision")


def downgrade() -> None:
    number = op.get_bind().execute(sa.text("SELECT max(number) FROM revisions")).scalar() or 0
    table = op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "number": number}])
    op.drop_table("revisions")
