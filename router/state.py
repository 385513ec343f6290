"""The state of a run and its steps, as the routing engine reads and changes it.

These are plain dataclasses: :mod:`router.store` loads one under a per-run
lock, :mod:`router.engine` changes it, and the store writes back what
changed. Nothing here talks to a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eventing.contract import JSON, ObjectRef, StepOutput


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(StrEnum):
    WAITING = "waiting"  # some step it waits for has not finished
    REQUESTED = "requested"  # step.requested was emitted; no answer yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # its `when:` was false: its inputs pass through
    CANCELLED = "cancelled"  # the run failed before it could start

    @property
    def done(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)

    @property
    def final(self) -> bool:
        return self not in (StepStatus.WAITING, StepStatus.REQUESTED)


def _refs(data: Any) -> tuple[ObjectRef, ...]:
    return tuple(ObjectRef.from_data(r) for r in data or [])


@dataclass
class StepState:
    """One step of one run."""

    step_id: str
    function: str
    status: StepStatus = StepStatus.WAITING
    attempt: int = 0
    requested_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    # What the step cost, as its part measured it: CPU of its thread, time waiting for Triton.
    cpu_ms: float | None = None
    inference_ms: float | None = None
    outputs: tuple[ObjectRef, ...] = ()
    metadata: JSON = field(default_factory=dict)
    error: JSON | None = None

    @property
    def result(self) -> StepOutput:
        return StepOutput(self.outputs, self.metadata)

    def to_row(self) -> JSON:
        return {
            "step_id": self.step_id,
            "function": self.function,
            "status": self.status.value,
            "attempt": self.attempt,
            "requested_at": self.requested_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "cpu_ms": self.cpu_ms,
            "inference_ms": self.inference_ms,
            "outputs": [o.to_data() for o in self.outputs],
            "metadata": self.metadata,
            "error": self.error,
        }

    @classmethod
    def from_row(cls, row: Any) -> StepState:
        return cls(
            step_id=row["step_id"],
            function=row["function"],
            status=StepStatus(row["status"]),
            attempt=row["attempt"],
            requested_at=row["requested_at"],
            finished_at=row["finished_at"],
            duration_ms=row["duration_ms"],
            cpu_ms=row["cpu_ms"],
            inference_ms=row["inference_ms"],
            outputs=_refs(row["outputs"]),
            metadata=row["metadata"] or {},
            error=row["error"],
        )


@dataclass
class RunState:
    """One run of one pipeline version over one source object."""

    id: str
    pipeline: str
    version: int
    source: ObjectRef
    etag: str
    status: RunStatus
    created_at: float
    updated_at: float
    traceparent: str | None = None
    finished_at: float | None = None
    outputs: tuple[ObjectRef, ...] = ()
    error: JSON | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    # live; shadow (a rollout's candidate beside the live run); canary (instead of it)
    role: str = "live"

    def to_row(self) -> JSON:
        return {
            "id": self.id,
            "role": self.role,
            "pipeline": self.pipeline,
            "version": self.version,
            "source_bucket": self.source.bucket,
            "source_key": self.source.key,
            "etag": self.etag,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "traceparent": self.traceparent,
            "outputs": [o.to_data() for o in self.outputs],
            "error": self.error,
        }

    @classmethod
    def from_row(cls, row: Any, steps: list[StepState]) -> RunState:
        return cls(
            id=row["id"],
            role=row["role"],
            pipeline=row["pipeline"],
            version=row["version"],
            source=ObjectRef(row["source_bucket"], row["source_key"]),
            etag=row["etag"],
            status=RunStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
            traceparent=row["traceparent"],
            outputs=_refs(row["outputs"]),
            error=row["error"],
            steps={s.step_id: s for s in steps},
        )
