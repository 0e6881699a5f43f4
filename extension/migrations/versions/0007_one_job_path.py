"""one job path: a job owns run state; a training keeps only its decision's life

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

- jobs.request: what the job's recorder needs, and the store keys to clean up after it;
- jobs.result: what a succeeded job made (a dataset, a model, an evaluation);
- jobs.error: the error a failed job ended with, as an API error body ({"error", "detail", "items"});
- trainings.candidate_facts: the candidate's facts, recorded once from the training's result;
- trainings.status becomes trainings.stage, the decision's life only ("pending" until a candidate
  exists, then candidate, updated, kept_both or discarded); `error` and `finished_at` are the job's.
  A training that has no job (made before jobs existed) gets one here that says how it ended.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LOST = "lost on restart: the cluster no longer had it"
# A training's old status -> its job's state, for trainings that have no job.
JOB_STATES = {
    "running": "failed",
    "failed": "failed",
    "cancelled": "cancelled",
    "candidate": "succeeded",
    "updated": "succeeded",
    "kept_both": "succeeded",
    "discarded": "succeeded",
}


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.JSON(), nullable=True))
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("candidate_facts", sa.JSON(), nullable=True))

    trainings = sa.table(
        "trainings",
        sa.column("id", sa.Integer),
        sa.column("owner_id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("error", sa.String),
        sa.column("created_at", sa.DateTime),
        sa.column("finished_at", sa.DateTime),
    )
    jobs = sa.table(
        "jobs",
        sa.column("kind", sa.String),
        sa.column("state", sa.String),
        sa.column("reason", sa.String),
        sa.column("training_id", sa.Integer),
        sa.column("attempts", sa.Integer),
        sa.column("done", sa.Integer),
        sa.column("total", sa.Integer),
        sa.column("key", sa.String),
        sa.column("owner_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
        sa.column("finished_at", sa.DateTime),
        sa.column("request", sa.JSON),
    )
    connection = op.get_bind()
    with_jobs = {row[0] for row in connection.execute(sa.select(jobs.c.training_id)).all()}
    rows = connection.execute(
        sa.select(
            trainings.c.id,
            trainings.c.owner_id,
            trainings.c.status,
            trainings.c.error,
            trainings.c.created_at,
            trainings.c.finished_at,
        )
    ).all()
    for training_id, owner_id, status, error, created_at, finished_at in rows:
        if training_id in with_jobs:
            continue
        state = JOB_STATES.get(status, "failed")
        connection.execute(
            jobs.insert().values(
                kind="train",
                state=state,
                reason=LOST if status == "running" else error,
                training_id=training_id,
                attempts=1,
                done=0,
                total=0,
                key=f"headstart-train-migrated-{training_id}",
                owner_id=owner_id,
                created_at=created_at,
                finished_at=finished_at or created_at,
                request={},
            )
        )
    connection.execute(
        trainings.update()
        .where(trainings.c.status.in_(["running", "failed", "cancelled"]))
        .values(status="pending")
    )
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("finished_at")
        batch_op.alter_column("status", new_column_name="stage")


def downgrade() -> None:
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.alter_column("stage", new_column_name="status")
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.JSON(), nullable=True))
        batch_op.drop_column("candidate_facts")
    trainings = sa.table("trainings", sa.column("id", sa.Integer), sa.column("status", sa.String))
    connection = op.get_bind()
    connection.execute(trainings.update().where(trainings.c.status == "pending").values(status="failed"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("result")
        batch_op.drop_column("request")
