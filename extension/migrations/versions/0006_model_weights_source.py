"""models.weights_source: where a created model's pretrained starting weights came from

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Models made before this revision did not record it: their source stays unknown (null).
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights_source", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("weights_source")
