"""sweeps: many heads of one model version trained in one job, each run a training with a candidate

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

- sweeps: the model version, the dataset, the grid asked for and its owner;
- trainings.sweep_id and jobs.sweep_id: a sweep's runs, and the one job that trains them;
- trainings.val_accuracy: the candidate's val accuracy, by which a sweep ranks its runs.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=True),
        sa.Column("draws", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweeps_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweeps_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweeps_owner_id"), ["owner_id"], unique=False)
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("val_accuracy", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_trainings_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key("fk_trainings_sweep_id", "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_jobs_sweep_id", "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_sweep_id", type_="foreignkey")
        batch_op.drop_column("sweep_id")
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.drop_constraint("fk_trainings_sweep_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_trainings_sweep_id"))
        batch_op.drop_column("sweep_id")
        batch_op.drop_column("val_accuracy")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweeps_owner_id"))
        batch_op.drop_index(batch_op.f("ix_sweeps_model_id"))
        batch_op.drop_index(batch_op.f("ix_sweeps_dataset_id"))
    op.drop_table("sweeps")
