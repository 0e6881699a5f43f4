"""model_versions.content_sha: the sha256 of a version's own file, which keys the models workers keep
loaded for predictions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Versions made before this revision have none: a worker loads them for every prediction, as before.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_sha", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("content_sha")
