"""The REST API for runs (list, read, retry) and the objects they made."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from eventing.contract import ObjectRef
from router.deps import Services
from router.errors import BadQuery, ObjectUnavailable
from router.state import RunStatus
from router.store import RunQuery
from router.views import RunList, RunOut

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
        limit=limit,
        offset=offset,
    )
    found, total = services.store.list_runs(query)
    return RunList(
        runs=[services.run_view(r) for r in found], total=total, limit=limit, offset=offset
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
