"""Steps record what they cost: the CPU of the part's thread and the time waiting for Triton.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Two nullable columns; steps recorded before them (or answered by a part
that does not measure) have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kpipe_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_ms", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("inference_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kpipe_steps", schema=None) as batch_op:
        batch_op.drop_column("inference_ms")
        batch_op.drop_column("cpu_ms")
