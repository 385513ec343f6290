"""The schema of kpipe 0.1.0: pipelines, versions, runs, steps and backfills.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Release 0.1.0 made these tables with ``metadata.create_all`` and kept no
revision. So this revision creates only the tables a database lacks: on a
database made by 0.1.0 it creates nothing (or the backfill tables, when the
database is older than backfills) and Alembic stamps it at 0001.

The DDL is frozen here, apart from ``router/schema.py``, so that later
revisions can change the tables without changing what this one made.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def _pipelines() -> None:
    op.create_table(
        "kpipe_pipelines",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("active_version", sa.Integer, nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def _versions() -> None:
    op.create_table(
        "kpipe_pipeline_versions",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def _runs() -> None:
    op.create_table(
        "kpipe_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source_bucket", sa.String(63), nullable=False),
        sa.Column("source_key", sa.Text, nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("error", sa.JSON),
    )
    op.create_index("ix_kpipe_runs_pipeline", "kpipe_runs", ["pipeline"])
    op.create_index("ix_kpipe_runs_status", "kpipe_runs", ["status"])
    op.create_index("ix_kpipe_runs_created_at", "kpipe_runs", ["created_at"])


def _steps() -> None:
    op.create_table(
        "kpipe_steps",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("kpipe_runs.id"), primary_key=True),
        sa.Column("step_id", sa.String(63), primary_key=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("requested_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration_ms", sa.Float),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("error", sa.JSON),
    )
    op.create_index("ix_kpipe_steps_status", "kpipe_steps", ["status"])


def _backfills() -> None:
    op.create_table(
        "kpipe_backfills",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
    )
    op.create_index("ix_kpipe_backfills_status", "kpipe_backfills", ["status"])


def _backfill_items() -> None:
    op.create_table(
        "kpipe_backfill_items",
        sa.Column("backfill_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("object", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index("ix_kpipe_backfill_items_run_id", "kpipe_backfill_items", ["run_id"])


# In creation order: kpipe_steps refers to kpipe_runs.
TABLES = {
    "kpipe_pipelines": _pipelines,
    "kpipe_pipeline_versions": _versions,
    "kpipe_runs": _runs,
    "kpipe_steps": _steps,
    "kpipe_backfills": _backfills,
    "kpipe_backfill_items": _backfill_items,
}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    kept = [name for name in TABLES if name in existing]
    if kept:
        log.info("adopting the tables kpipe 0.1.0 made: %s", ", ".join(kept))
    for name, create in TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
