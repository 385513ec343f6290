"""What the REST API returns: pydantic models and the conversions into them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from eventing.contract import ObjectRef
from router.errors import Problem
from router.spec import BUCKET_PATTERN, PipelineSpec
from router.state import RunState, StepState
from router.store import StoredPipeline


def _iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class ObjectRefOut(BaseModel):
    bucket: str
    key: str

    @classmethod
    def of(cls, ref: ObjectRef) -> ObjectRefOut:
        return cls(bucket=ref.bucket, key=ref.key)


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorBody
    problems: list[dict[str, str]] | None = None


class PipelineOut(BaseModel):
    name: str
    version: int
    active_version: int | None
    created_at: datetime | None
    spec: dict[str, Any]

    @classmethod
    def of(cls, stored: StoredPipeline) -> PipelineOut:
        return cls(
            name=stored.name,
            version=stored.version,
            active_version=stored.active_version,
            created_at=_iso(stored.created_at),
            spec=stored.spec.model_dump(mode="json"),
        )


class ValidationOut(BaseModel):
    valid: bool
    problems: list[dict[str, str]]

    @classmethod
    def of(cls, problems: list[Problem]) -> ValidationOut:
        return cls(valid=not problems, problems=[p.to_data() for p in problems])


def _total(values: Iterable[float | None]) -> float | None:
    """The sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


class StepOut(BaseModel):
    id: str
    function: str
    status: str
    attempt: int
    requested_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    cpu_ms: float | None = None
    inference_ms: float | None = None
    outputs: list[ObjectRefOut]
    metadata: dict[str, Any]
    error: dict[str, Any] | None

    @classmethod
    def of(cls, step: StepState) -> StepOut:
        return cls(
            id=step.step_id,
            function=step.function,
            status=step.status.value,
            attempt=step.attempt,
            requested_at=_iso(step.requested_at),
            finished_at=_iso(step.finished_at),
            duration_ms=step.duration_ms,
            cpu_ms=step.cpu_ms,
            inference_ms=step.inference_ms,
            outputs=[ObjectRefOut.of(o) for o in step.outputs],
            metadata=step.metadata,
            error=step.error,
        )


class LineageOut(BaseModel):
    """One hop of a run's lineage: the objects a step made (or passed on)."""

    step: str
    function: str | None
    status: str
    objects: list[ObjectRefOut]


class RunOut(BaseModel):
    id: str
    pipeline: str
    version: int
    role: str = "live"
    status: str
    source: ObjectRefOut
    etag: str
    created_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    # The sums over its steps (the attempts that succeeded), as the parts measured them.
    cpu_ms: float | None = None
    inference_ms: float | None = None
    outputs: list[ObjectRefOut]
    error: dict[str, Any] | None
    steps: list[StepOut]
    lineage: list[LineageOut]

    @classmethod
    def of(cls, run: RunState, spec: PipelineSpec | None = None) -> RunOut:
        order = [s.id for s in spec.steps] if spec else list(run.steps)
        duration = (run.finished_at - run.created_at) * 1000 if run.finished_at else None
        return cls(
            id=run.id,
            pipeline=run.pipeline,
            version=run.version,
            role=run.role,
            status=run.status.value,
            source=ObjectRefOut.of(run.source),
            etag=run.etag,
            created_at=_iso(run.created_at),
            updated_at=_iso(run.updated_at),
            finished_at=_iso(run.finished_at),
            duration_ms=duration,
            cpu_ms=_total(s.cpu_ms for s in run.steps.values()),
            inference_ms=_total(s.inference_ms for s in run.steps.values()),
            outputs=[ObjectRefOut.of(o) for o in run.outputs],
            error=run.error,
            steps=[StepOut.of(run.steps[s]) for s in order if s in run.steps],
            lineage=[
                LineageOut(
                    step="source",
                    function=None,
                    status="stored",
                    objects=[ObjectRefOut.of(run.source)],
                ),
                *(
                    LineageOut(
                        step=s,
                        function=run.steps[s].function,
                        status=run.steps[s].status.value,
                        objects=[ObjectRefOut.of(o) for o in run.steps[s].outputs],
                    )
                    for s in order
                    if s in run.steps
                ),
            ],
        )


class RunList(BaseModel):
    runs: list[RunOut]
    total: int
    limit: int
    offset: int


class ActiveVersionIn(BaseModel):
    version: int = Field(ge=1)


class BackfillIn(BaseModel):
    """What to backfill; the bucket and prefix default to the pipeline's trigger."""

    bucket: str | None = Field(None, pattern=BUCKET_PATTERN)
    prefix: str | None = Field(None, max_length=1024)
    concurrency: int = Field(4, ge=1, le=64)


class BackfillOut(BaseModel):
    id: str
    kind: str = "start"
    pipeline: str
    version: int
    bucket: str
    prefix: str
    concurrency: int
    total: int
    started: int
    succeeded: int
    failed: int
    status: str
    error: str | None


class RolloutRulesIn(BaseModel):
    """What ends the rollout on its own, judged at every sweep; none: only by hand."""

    promote_after: int = Field(
        0, ge=0, le=1_000_000, description="promote once this many candidate runs finished"
    )
    max_failure_rate_increase: float | None = Field(None, ge=0, le=1)
    max_p95_ratio: float | None = Field(None, ge=1, le=1000)
    metric: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\.[A-Za-z0-9_]{1,64}$",
        description="<step id>.<metadata key> of a number; lower for the shadow on a photo: "
        "roll back",
    )


class RolloutIn(BaseModel):
    """A candidate version to try: beside the live one (shadow) or instead, for a share (canary)."""

    version: int = Field(ge=1, le=2**31 - 1)
    mode: Literal["shadow", "canary"]
    percent: int = Field(
        100, ge=1, le=100, description="canary: the share of uploads (by key) it takes"
    )
    rules: RolloutRulesIn = Field(default_factory=RolloutRulesIn)


class RolloutEndIn(BaseModel):
    outcome: Literal["promote", "rollback"]
    reason: str = Field("ended by hand", max_length=2000)


class RolloutOut(BaseModel):
    id: str
    pipeline: str
    version: int
    mode: str
    percent: int
    status: str
    reason: str | None
    created_at: datetime | None
    ended_at: datetime | None
    rules: dict[str, Any]
    # runs of the pipeline since it began, by role (live, shadow, canary), by status
    runs: dict[str, dict[str, int]]
    # the rules' figures now: failure rates, p95 durations, candidate runs compared
    judged: dict[str, Any]


class RedriveIn(BaseModel):
    """Which failed runs to retry: a pipeline's, optionally of one version, error code, time."""

    pipeline: str = Field(max_length=63)
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    error_code: str | None = Field(None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    concurrency: int = Field(4, ge=1, le=64)
    dry_run: bool = False


class RedriveOut(BaseModel):
    """How many failed runs matched, how many this redrive took, and its jobs (none if dry)."""

    matched: int
    taken: int
    dry_run: bool
    runs: list[str]
    jobs: list[BackfillOut]


class UploadOut(BaseModel):
    bucket: str
    key: str
    etag: str
