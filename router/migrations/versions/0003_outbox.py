"""The transactional outbox: the events the router emits, committed with its changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

A new table only (see ``router/outbox.py``); no rows of older tables change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpipe_outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("cause", sa.String(length=255), nullable=True),
        sa.Column("reply", sa.Boolean(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("kpipe_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kpipe_outbox_cause"), ["cause"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_kpipe_outbox_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("kpipe_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kpipe_outbox_created_at"))
        batch_op.drop_index(batch_op.f("ix_kpipe_outbox_cause"))
    op.drop_table("kpipe_outbox")
