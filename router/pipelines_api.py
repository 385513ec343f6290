"""The REST API for pipelines: specs and versions, validation, backfill, uploads, parts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from eventing.contract import ObjectRef
from router.deps import UPLOAD_DOC, Body, Services, documented_body, json_body, read_upload
from router.errors import BadQuery, Problem, SpecInvalid
from router.rollouts import Rollout, RolloutMode, RolloutRules, RolloutStatus
from router.services import RouterServices
from router.spec import load_document
from router.validation import find_problems, validate_spec
from router.views import (
    ActiveVersionIn,
    BackfillIn,
    BackfillOut,
    PipelineOut,
    RolloutEndIn,
    RolloutIn,
    RolloutOut,
    UploadOut,
    ValidationOut,
)

# Every route here needs the API token when one is set (router/api.py adds the check).
router = APIRouter(prefix="/v1", tags=["pipelines"])


@router.get("/pipelines")
def list_pipelines(services: Services) -> list[PipelineOut]:
    return [PipelineOut.of(p) for p in services.store.list_pipelines()]


@router.post("/pipelines/validate")
def validate(body: Body, services: Services) -> ValidationOut:
    """Every problem in a spec, each with its JSON path; saves nothing."""
    try:
        data = load_document(body)
    except SpecInvalid as exc:
        return ValidationOut.of(exc.problems)
    _, problems = find_problems(data, services.catalog, services.registered_specs(), services.scope)
    return ValidationOut.of(problems)


@router.put("/pipelines/{name}")
def put_pipeline(name: str, body: Body, services: Services) -> PipelineOut:
    """Register a spec (JSON or YAML body) as the pipeline's next version."""
    data: Any = load_document(body)
    if isinstance(data, dict):
        data.setdefault("name", name)
        if data["name"] != name:
            problem = Problem("name", f"spec name {data['name']!r} differs from URL {name!r}")
            raise SpecInvalid([problem])
    spec = validate_spec(data, services.catalog, services.registered_specs(), services.scope)
    version = services.store.put_pipeline(spec)
    return PipelineOut.of(services.store.get_pipeline(name, version))


@router.get("/pipelines/{name}")
def get_pipeline(name: str, services: Services) -> PipelineOut:
    return PipelineOut.of(services.store.get_pipeline(name))


@router.delete("/pipelines/{name}", status_code=204)
def delete_pipeline(name: str, services: Services) -> Response:
    services.store.delete_pipeline(name)
    return Response(status_code=204)


@router.get("/pipelines/{name}/versions")
def list_versions(name: str, services: Services) -> list[PipelineOut]:
    return [PipelineOut.of(p) for p in services.store.list_versions(name)]


@router.get("/pipelines/{name}/versions/{version}")
def get_version(name: str, version: int, services: Services) -> PipelineOut:
    return PipelineOut.of(services.store.get_pipeline(name, version))


@router.post("/pipelines/{name}/active", openapi_extra=documented_body(ActiveVersionIn))
def set_active(
    name: str,
    body: Annotated[ActiveVersionIn, Depends(json_body(ActiveVersionIn))],
    services: Services,
) -> PipelineOut:
    """Pin a stored version as the active one, or roll back to it."""
    services.store.set_active(name, body.version)
    return PipelineOut.of(services.store.get_pipeline(name))


@router.post(
    "/pipelines/{name}/backfill", status_code=202, openapi_extra=documented_body(BackfillIn)
)
def backfill(
    name: str, body: Annotated[BackfillIn, Depends(json_body(BackfillIn))], services: Services
) -> BackfillOut:
    """Run the pipeline over every object already under a bucket/prefix."""
    stored = services.store.get_pipeline(name)
    bucket = body.bucket or stored.spec.trigger.bucket
    prefix = stored.spec.trigger.prefix if body.prefix is None else body.prefix
    objects = list(services.object_store().list(bucket, prefix))
    job = services.backfills.start(
        stored.spec, stored.version, objects, bucket, prefix, body.concurrency
    )
    return BackfillOut.model_validate(job, from_attributes=True)


@router.post("/pipelines/{name}/rollout", status_code=201, openapi_extra=documented_body(RolloutIn))
def start_rollout(
    name: str, body: Annotated[RolloutIn, Depends(json_body(RolloutIn))], services: Services
) -> RolloutOut:
    """Try a stored version on real uploads: beside the live one, or instead for a share."""
    mode = RolloutMode(body.mode)
    percent = body.percent if mode is RolloutMode.CANARY else 100
    rules = RolloutRules.from_data(body.rules.model_dump(exclude_none=True))
    rollout = services.router.rollouts.start(name, body.version, mode, percent, rules)
    return _rollout_out(services, rollout)


@router.get("/pipelines/{name}/rollout")
def get_rollout(name: str, services: Services) -> RolloutOut:
    """The pipeline's latest rollout, with its runs so far by role and status."""
    return _rollout_out(services, services.router.rollouts.current(name))


@router.post("/pipelines/{name}/rollout/end", openapi_extra=documented_body(RolloutEndIn))
def end_rollout(
    name: str, body: Annotated[RolloutEndIn, Depends(json_body(RolloutEndIn))], services: Services
) -> RolloutOut:
    """Promote the candidate (it becomes the active version) or roll it back."""
    outcome = RolloutStatus.PROMOTED if body.outcome == "promote" else RolloutStatus.ROLLED_BACK
    return _rollout_out(services, services.router.rollouts.end(name, outcome, body.reason))


@router.get("/pipelines/{name}/rollout/compare")
def compare_rollout(
    name: str, services: Services, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """Photo by photo, the live run and the shadow's: statuses, durations, outputs, and the
    detections one found and the other did not, by step."""
    rollout = services.router.rollouts.current(name)
    return services.router.rollouts.compare(rollout, limit)


def _rollout_out(services: RouterServices, rollout: Rollout) -> RolloutOut:
    verdict = services.router.rollouts.judge(rollout)
    return RolloutOut(
        id=rollout.id,
        pipeline=rollout.pipeline,
        version=rollout.version,
        mode=rollout.mode.value,
        percent=rollout.percent,
        status=rollout.status.value,
        reason=rollout.reason,
        created_at=datetime.fromtimestamp(rollout.created_at, UTC),
        ended_at=datetime.fromtimestamp(rollout.ended_at, UTC) if rollout.ended_at else None,
        rules=rollout.rules.to_data(),
        runs=services.router.rollouts.summary(rollout),
        judged={
            "compared": verdict.compared,
            "failed_check": verdict.failed_check,
            **verdict.figures,
        },
    )


@router.get("/backfills/{backfill_id}")
def get_backfill(backfill_id: str, services: Services) -> BackfillOut:
    """A backfill's progress, from any replica."""
    return BackfillOut.model_validate(services.backfills.get(backfill_id), from_attributes=True)


@router.post("/pipelines/{name}/uploads", status_code=201, openapi_extra=UPLOAD_DOC)
async def upload(name: str, request: Request, services: Services) -> UploadOut:
    """Upload an image (multipart ``file``) into the trigger bucket; the run starts by itself."""
    # Every blocking call (the database, the store) runs off the event loop,
    # which also carries the broker's ingress and deliveries.
    stored = await run_in_threadpool(services.store.get_pipeline, name)
    spec = stored.spec
    async with read_upload(request, services.settings.max_upload_bytes) as file:
        filename = PurePosixPath(file.filename.replace("\\", "/")).name
        if filename in ("", ".", ".."):
            raise BadQuery("file", "the upload needs a file name")
        key = spec.trigger.prefix + filename
        if not key.endswith(spec.trigger.suffix):
            raise BadQuery("file", f"{name} only takes names ending in {spec.trigger.suffix!r}")
        ref = ObjectRef(spec.trigger.bucket, key)
        # Streamed from the spooled file a part at a time, never read whole.
        etag = await run_in_threadpool(
            services.object_store().put_stream, ref, file.file, file.size, file.content_type
        )
    return UploadOut(bucket=ref.bucket, key=ref.key, etag=etag)


@router.get("/functions", tags=["functions"])
def list_functions(services: Services) -> list[dict[str, Any]]:
    """The parts catalogue: each part's group, params JSON Schema and labels."""
    return services.catalog.describe()
