"""Rollouts: a pipeline's candidate version run as a shadow or a canary; runs get a role.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

A new table, and ``kpipe_runs.role`` (``live`` for every existing run).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpipe_rollouts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("kpipe_rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kpipe_rollouts_pipeline"), ["pipeline"], unique=False)
        batch_op.create_index(batch_op.f("ix_kpipe_rollouts_status"), ["status"], unique=False)
    with op.batch_alter_table("kpipe_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), server_default="live", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("kpipe_runs", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("kpipe_rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kpipe_rollouts_status"))
        batch_op.drop_index(batch_op.f("ix_kpipe_rollouts_pipeline"))
    op.drop_table("kpipe_rollouts")
