"""A router database as kpipe 0.1.0 made it: its tables, frozen, and rows it wrote.

0.1.0 had no migrations: ``Store`` and ``BackfillStore`` ran
``metadata.create_all`` over the table definitions below (copied verbatim
from that release's router/store.py and router/backfill_store.py; never
change them). The rows are what its router wrote for a few real runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("error", sa.JSON),
)

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
)

items = sa.Table(
    "kpipe_backfill_items",
    metadata,
    sa.Column("backfill_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("object", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(64), index=True),
)

# The tables of a release before backfills lived in the database.
CORE = (pipelines, versions, runs, steps)

# -- rows 0.1.0 wrote ----------------------------------------------------------


def _spec(name: str, steps_: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A spec as 0.1.0 stored it: ``PipelineSpec.model_dump(mode="json")``, every default."""
    return {
        "name": name,
        "description": top.get("description", ""),
        "trigger": top.get("trigger", {"bucket": "uploads", "prefix": "", "suffix": ""}),
        "output": {"bucket": "processed"},
        "steps": [
            {"params": {}, "after": [], "when": [], "fuse": False, **step} for step in steps_
        ],
        "fuse": top.get("fuse", False),
    }


PRIVACY_BLUR_V1 = _spec(
    "privacy-blur",
    [
        {"id": "small", "function": "resize", "params": {"max_side": 1024}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {"id": "blur", "function": "blur", "params": {"labels": ["face"]}, "after": ["faces"]},
    ],
    trigger={"bucket": "uploads", "prefix": "", "suffix": ".jpg"},
)
PRIVACY_BLUR_V2 = _spec(
    "privacy-blur",
    [
        {"id": "small", "function": "resize", "params": {"max_side": 512}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {
            "id": "blur",
            "function": "blur",
            "params": {"labels": ["face"]},
            "after": ["faces"],
            "when": ["faces.count > 0"],
        },
    ],
    description="smaller, and only when there is a face",
    fuse=True,
)
THUMBS_V1 = _spec(
    "thumbs",
    [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
    trigger={"bucket": "uploads", "prefix": "old/", "suffix": ""},
)
RETIRED_V1 = _spec(
    "retired",
    [{"id": "png", "function": "convert", "params": {"format": "png"}}],
)

ASTRONAUT_RUN = "04d915bf95a5546ddf647425"  # privacy-blur v1, succeeded
CAT_RUN = "865291f1a6fb1bef0ecdcaf4"  # privacy-blur v2, failed at faces
BACKFILLED_RUN = "5ff6eed24611a872330f0f65"  # thumbs v1, started by the backfill, running
RETIRED_RUN = "203d49ec44b1cd443294bda1"  # retired v1, pending (its pipeline was deleted)
BACKFILL = "bf5c0ffee0ddba11"
BACKFILL_OWNER = "router-7f9c4d"
BACKFILL_LEASE_UNTIL = 1763795030.5  # the replica died: its lease ran out


def _run(
    run_id: str,
    pipeline: str,
    version: int,
    key: str,
    etag: str,
    status: str,
    created_at: float,
    **rest: Any,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "pipeline": pipeline,
        "version": version,
        "source_bucket": "uploads",
        "source_key": key,
        "etag": etag,
        "status": status,
        "created_at": created_at,
        "updated_at": rest.get("updated_at", created_at),
        "finished_at": rest.get("finished_at"),
        "traceparent": rest.get("traceparent"),
        "outputs": rest.get("outputs", []),
        "error": rest.get("error"),
    }


def _step(run_id: str, step_id: str, function: str, status: str, **rest: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "function": function,
        "status": status,
        "attempt": rest.get("attempt", 0),
        "requested_at": rest.get("requested_at"),
        "finished_at": rest.get("finished_at"),
        "duration_ms": rest.get("duration_ms"),
        "outputs": rest.get("outputs", []),
        "metadata": rest.get("metadata", {}),
        "error": rest.get("error"),
    }


_FACE = {"label": "face", "box": [171.0, 48.0, 103.0, 103.0], "score": 1.0}
_FAILURE = {
    "code": "model_unavailable",
    "message": "model face_detection not ready on Triton at http://127.0.0.1:8000",
    "retryable": True,
}

ROWS: Mapping[sa.Table, list[dict[str, Any]]] = {
    pipelines: [
        # rolled back to version 1 and pinned there
        {"name": "privacy-blur", "active_version": 1, "pinned": True, "updated_at": 1763790000.5},
        {"name": "thumbs", "active_version": 1, "pinned": False, "updated_at": 1763791000.0},
    ],
    versions: [
        {
            "name": "privacy-blur",
            "version": 1,
            "spec": PRIVACY_BLUR_V1,
            "created_at": 1763780000.25,
        },
        {"name": "privacy-blur", "version": 2, "spec": PRIVACY_BLUR_V2, "created_at": 1763785000.0},
        {"name": "thumbs", "version": 1, "spec": THUMBS_V1, "created_at": 1763791000.0},
        # deleted since: its version stays, so its runs still show their spec
        {"name": "retired", "version": 1, "spec": RETIRED_V1, "created_at": 1763770000.0},
    ],
    runs: [
        _run(
            ASTRONAUT_RUN,
            "privacy-blur",
            1,
            "holiday/astronaut.jpg",
            "9a0364b9e99bb480dd25e1f0284c8555",
            "succeeded",
            1763780100.125,
            updated_at=1763780101.75,
            finished_at=1763780101.75,
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            outputs=[{"bucket": "processed", "key": "privacy-blur/holiday/astronaut.jpg"}],
        ),
        _run(
            CAT_RUN,
            "privacy-blur",
            2,
            "holiday/cat.jpg",
            "1b2cf535f27731c974343645a3985328",
            "failed",
            1763785100.0,
            updated_at=1763785290.5,
            finished_at=1763785290.5,
            error={"step": "faces", **_FAILURE},
        ),
        _run(
            BACKFILLED_RUN,
            "thumbs",
            1,
            "old/0.jpg",
            "etag-0",
            "running",
            1763795000.0,
            updated_at=1763795000.5,
        ),
        _run(
            RETIRED_RUN,
            "retired",
            1,
            "scan.png",
            "d41d8cd98f00b204e9800998ecf8427e",
            "pending",
            1763770500.0,
        ),
    ],
    steps: [
        _step(
            ASTRONAUT_RUN,
            "small",
            "resize",
            "succeeded",
            attempt=1,
            requested_at=1763780100.2,
            finished_at=1763780100.6,
            duration_ms=412.5,
            outputs=[
                {
                    "bucket": "processed",
                    "key": f"privacy-blur/_runs/{ASTRONAUT_RUN}/small/astronaut.jpg",
                }
            ],
            metadata={"width": 512, "height": 512},
        ),
        _step(
            ASTRONAUT_RUN,
            "faces",
            "detect_faces",
            "succeeded",
            attempt=2,  # redriven once
            requested_at=1763780100.7,
            finished_at=1763780101.3,
            duration_ms=88.0,
            outputs=[
                {
                    "bucket": "processed",
                    "key": f"privacy-blur/_runs/{ASTRONAUT_RUN}/small/astronaut.jpg",
                }
            ],
            metadata={"detections": [_FACE], "count": 1, "labels": ["face"]},
        ),
        _step(
            ASTRONAUT_RUN,
            "blur",
            "blur",
            "succeeded",
            attempt=1,
            requested_at=1763780101.4,
            finished_at=1763780101.7,
            duration_ms=31.25,
            outputs=[{"bucket": "processed", "key": "privacy-blur/holiday/astronaut.jpg"}],
            metadata={"blurred": 1},
        ),
        _step(CAT_RUN, "small", "resize", "succeeded", attempt=1, duration_ms=398.0),
        _step(
            CAT_RUN,
            "faces",
            "detect_faces",
            "failed",
            attempt=1,
            requested_at=1763785101.0,
            finished_at=1763785290.5,
            error=_FAILURE,
        ),
        _step(CAT_RUN, "blur", "blur", "cancelled"),
        _step(BACKFILLED_RUN, "small", "resize", "requested", attempt=1, requested_at=1763795000.5),
        _step(RETIRED_RUN, "png", "convert", "waiting"),
    ],
    backfills: [
        {
            "id": BACKFILL,
            "pipeline": "thumbs",
            "version": 1,
            "bucket": "uploads",
            "prefix": "old/",
            "concurrency": 1,
            "status": "running",
            "error": None,
            "created_at": 1763794999.0,
            "owner": BACKFILL_OWNER,
            "lease_until": BACKFILL_LEASE_UNTIL,
        }
    ],
    items: [
        {
            "backfill_id": BACKFILL,
            "seq": seq,
            "object": {
                "bucket": "uploads",
                "key": f"old/{seq}.jpg",
                "size": 48213 + seq,
                "etag": f"etag-{seq}",
                "content_type": "image/jpeg",
            },
            "run_id": BACKFILLED_RUN if seq == 0 else None,
        }
        for seq in range(3)
    ],
}


def make_database(url: str, tables: tuple[sa.Table, ...] = tuple(ROWS)) -> None:
    """Create ``tables`` as 0.1.0 did (``create_all``) and fill them with its rows."""
    engine = sa.create_engine(url)
    try:
        metadata.create_all(engine, tables=list(tables))
        with engine.begin() as conn:
            for table in tables:
                conn.execute(table.insert(), ROWS[table])
    finally:
        engine.dispose()
