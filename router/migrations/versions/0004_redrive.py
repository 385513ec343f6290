"""Backfills get a kind: "start" (a run per object, as before) or "redrive".

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

A redrive is a backfill whose items are the sources of failed runs, each of
which it retries from its failed steps (router/backfill.py). Existing rows
are backfills that start runs: the column defaults to "start".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kpipe_backfills", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="start", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("kpipe_backfills", schema=None) as batch_op:
        batch_op.drop_column("kind")
