"""The REST API for runs (list, read, retry) and the objects they made."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from eventing.contract import ObjectCreated, ObjectRef
from router.deps import Services, documented_body, json_body
from router.errors import BadQuery, ObjectUnavailable
from router.state import RunStatus
from router.store import RunQuery
from router.views import BackfillOut, RedriveIn, RedriveOut, RunList, RunOut

# The most failed runs one redrive takes; the rest are left for the next one.
REDRIVE_LIMIT = 10_000

# Every route here needs the API token when one is set (router/api.py adds the check).
router = APIRouter(prefix="/v1")


@router.get("/runs", tags=["runs"])
def list_runs(
    services: Services,
    pipeline: str | None = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    status: str | None = None,
    source: Annotated[str | None, Query(description="bucket/key of the source object")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    role: Annotated[
        str | None, Query(pattern="^(live|shadow|canary)$", description="live, shadow or canary")
    ] = None,
    error_code: Annotated[
        str | None,
        Query(max_length=64, description="a failed run's error code (undeliverable: dead letters)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunList:
    if status is not None and status not in {s.value for s in RunStatus}:
        raise BadQuery("status", f"must be one of {', '.join(s.value for s in RunStatus)}")
    source_ref = None
    if source is not None:
        bucket, _, key = source.partition("/")
        if not bucket or not key:
            raise BadQuery("source", "must be bucket/key")
        source_ref = (bucket, key)
    query = RunQuery(
        pipeline=pipeline,
        version=version,
        status=RunStatus(status) if status else None,
        source=source_ref,
        since=since.timestamp() if since else None,
        until=until.timestamp() if until else None,
        error_code=error_code,
        role=role,
        limit=limit,
        offset=offset,
    )
    found, total = services.store.list_runs(query)
    return RunList(
        runs=[services.run_view(r) for r in found], total=total, limit=limit, offset=offset
    )


@router.post("/runs/redrive", tags=["runs"], openapi_extra=documented_body(RedriveIn))
def redrive(
    body: Annotated[RedriveIn, Depends(json_body(RedriveIn))], services: Services
) -> RedriveOut:
    """Retry the failed runs a filter matches, each from its failed steps, at a bounded pace.

    With ``dry_run`` it only counts them. Otherwise it starts one redrive per
    pipeline version among them, a job like a backfill (progress at
    ``GET /v1/backfills/{id}``), that keeps at most ``concurrency`` of its
    runs unfinished at a time.
    """
    services.store.get_pipeline(body.pipeline)  # 404 for a pipeline never registered
    query = RunQuery(
        pipeline=body.pipeline,
        version=body.version,
        status=RunStatus.FAILED,
        since=body.since.timestamp() if body.since else None,
        until=body.until.timestamp() if body.until else None,
        error_code=body.error_code,
        limit=REDRIVE_LIMIT,
    )
    found, total = services.store.list_runs(query)
    by_version: dict[int, list[ObjectCreated]] = {}
    for run in found:
        source = ObjectCreated(run.source.bucket, run.source.key, 0, run.etag)
        by_version.setdefault(run.version, []).append(source)
    jobs = []
    if not body.dry_run:
        for version, sources in sorted(by_version.items()):
            job = services.backfills.redrive(body.pipeline, version, sources, body.concurrency)
            jobs.append(BackfillOut.model_validate(job, from_attributes=True))
    return RedriveOut(
        matched=total,
        taken=len(found),
        dry_run=body.dry_run,
        runs=[run.id for run in found[:100]],
        jobs=jobs,
    )


@router.get("/runs/{run_id}", tags=["runs"])
def get_run(run_id: str, services: Services) -> RunOut:
    return services.run_view(services.store.get_run(run_id))


@router.post("/runs/{run_id}/retry", tags=["runs"])
def retry_run(run_id: str, services: Services) -> RunOut:
    """Restart a failed run from the failed step; steps that succeeded are not run again."""
    if services.router.retry_run(run_id):
        services.flush()  # committed in the outbox; the relay retries what the broker refuses
    return services.run_view(services.store.get_run(run_id))


@router.get("/objects/{bucket}/{key:path}", tags=["objects"])
def get_object(bucket: str, key: str, services: Services) -> Response:
    """An object from a bucket some pipeline uses (sources, intermediates, outputs)."""
    # "." and ".." segments are valid in S3 but never written by kpipe, and
    # servers and proxies normalise such paths: refuse them here.
    dotted = any(segment in (".", "..") for segment in key.split("/"))
    if bucket not in services.used_buckets() or dotted:
        raise ObjectUnavailable(bucket, key)
    data = services.object_store().get(ObjectRef(bucket, key))
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if media_type not in _SHOWN_INLINE:
        # An uploaded HTML or SVG file must not run as the page's own origin,
        # where the API token lives: download it, sandboxed.
        media_type = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return Response(data, media_type=media_type, headers=headers)


# Raster images, the only objects the page shows inline (SVG is a document).
_SHOWN_INLINE = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)
