"""The router's tables, as the code reads and writes them today.

This is the schema at the newest migration (``router/migrations``): the
migrations create and change the tables in a database, and a test checks
that a database upgraded to the head revision matches these definitions.
To change a table, change it here *and* add a revision (see
``router/migrations/__init__.py``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

pipelines = sa.Table(
    "kpipe_pipelines",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("active_version", sa.Integer, nullable=False),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

versions = sa.Table(
    "kpipe_pipeline_versions",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "kpipe_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(63), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source_bucket", sa.String(63), nullable=False),
    sa.Column("source_key", sa.Text, nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("traceparent", sa.String(64)),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
    # live, shadow or canary (router/rollouts.py)
    sa.Column("role", sa.String(16), nullable=False, server_default="live"),
)

steps = sa.Table(
    "kpipe_steps",
    metadata,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("kpipe_runs.id"), primary_key=True),
    sa.Column("step_id", sa.String(63), primary_key=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("requested_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("duration_ms", sa.Float),
    sa.Column("cpu_ms", sa.Float),
    sa.Column("inference_ms", sa.Float),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
)

# A backfill: its settings and the lease of the replica working on it
# (router/backfill_store.py).
backfills = sa.Table(
    "kpipe_backfills",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(63), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("bucket", sa.String(63), nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),
    # "start": start a run per object; "redrive": retry each object's failed run.
    sa.Column("kind", sa.String(16), nullable=False, server_default="start"),
)

# One object a backfill runs over; ``run_id`` is set once its run started.
backfill_items = sa.Table(
    "kpipe_backfill_items",
    metadata,
    sa.Column("backfill_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("object", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(64), index=True),
)

# The transactional outbox (router/outbox.py): every event the router emits,
# written in the transaction of the change that caused it. ``reply`` rows were
# the answer to the event ``cause`` (the broker stores them); the relay posts
# the others to the broker and deletes each once the broker took it.
outbox = sa.Table(
    "kpipe_outbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("cause", sa.String(255), index=True),
    sa.Column("reply", sa.Boolean, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("refused", sa.Text),
)

# A pipeline's rollout of a candidate version (router/rollouts.py): at most one
# active per pipeline; ended ones stay, with their outcome and why.
rollouts = sa.Table(
    "kpipe_rollouts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(63), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("percent", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    # What ends it on its own (RolloutRules); {} for none.
    sa.Column("rules", sa.JSON, nullable=False),
)
