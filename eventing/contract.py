"""The kpipe event contract: event types, extension attributes and payloads.

Everything that crosses the broker is described here as frozen dataclasses
with ``to_data`` / ``from_data`` conversions. They know nothing of HTTP;
:mod:`eventing.http` turns an :class:`Event` into a binary-mode CloudEvent and
back.

Example:
    >>> ref = ObjectRef("uploads", "cats/tabby.jpg")
    >>> ObjectRef.from_data(ref.to_data()) == ref
    True
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from eventing.errors import MalformedEvent
from kpipe.core.settings import BucketSettings

JSON = dict[str, Any]


class EventType(StrEnum):
    """The CloudEvents ``type`` of every event kpipe emits."""

    OBJECT_CREATED = "io.kpipe.object.created"
    STEP_REQUESTED = "io.kpipe.step.requested"
    STEP_COMPLETED = "io.kpipe.step.completed"
    STEP_FAILED = "io.kpipe.step.failed"
    RUN_COMPLETED = "io.kpipe.run.completed"
    RUN_FAILED = "io.kpipe.run.failed"


# CloudEvents extension attribute names (lower-case letters and digits only).
EXT_PIPELINE = "kpipepipeline"
EXT_VERSION = "kpipeversion"
EXT_RUN = "kpiperun"
EXT_STEP = "kpipestep"
EXT_FUNCTION = "kpipefunction"
EXT_TRACEPARENT = "traceparent"
# Who signed an event, and the signature (eventing/signing.py).
EXT_KEYID = "kpipekeyid"
EXT_SIGNATURE = "kpipesignature"

# Where a pipeline's outputs go in its output bucket: everything under
# ``<pipeline>/``; a run's intermediates under ``<pipeline>/_runs/<run>/``.
RUNS_DIR = "_runs"


def pipeline_prefix(pipeline: str) -> str:
    """The prefix, in a pipeline's output bucket, of everything the pipeline writes."""
    return f"{pipeline}/"


def run_prefix(pipeline: str, run: str) -> str:
    """The prefix, in a pipeline's output bucket, of one run's intermediate objects."""
    return f"{pipeline}/{RUNS_DIR}/{run}/"


# The router subscribes to these; each part to STEP_REQUESTED with its name.
ROUTER_EVENT_TYPES = (
    EventType.OBJECT_CREATED,
    EventType.STEP_COMPLETED,
    EventType.STEP_FAILED,
)


def _require(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``data[name]`` if it has the right type, else raise MalformedEvent."""
    if not isinstance(data, Mapping):
        raise MalformedEvent(f"event data must be a JSON object, got {type(data).__name__}")
    if name not in data:
        raise MalformedEvent(f"event data is missing {name!r}", field=name)
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedEvent(f"event data field {name!r} has the wrong type", field=name)
    return value


@dataclass(frozen=True)
class ObjectRef:
    """A pointer to one object in the object store."""

    bucket: str
    key: str

    def to_data(self) -> JSON:
        return {"bucket": self.bucket, "key": self.key}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ObjectRef:
        bucket = _require(data, "bucket", str)
        key = _require(data, "key", str)
        if not bucket or not key:
            raise MalformedEvent("object reference needs a bucket and a key", field="key")
        return cls(bucket, key)

    def is_under(self, bucket: str, prefix: str) -> bool:
        """Whether this is an object of ``bucket`` under ``prefix``, with no ``..`` segment.

        Example:
            >>> ObjectRef("processed", "p/_runs/r1/../../q/x.jpg").is_under("processed", "p/")
            False
        """
        return (
            self.bucket == bucket
            and self.key.startswith(prefix)
            and ".." not in self.key.split("/")
        )

    def __str__(self) -> str:
        return f"{self.bucket}/{self.key}"


@dataclass(frozen=True)
class PipelineContext:
    """The extension attributes every pipeline event carries."""

    pipeline: str
    version: int
    run: str
    step: str = ""
    function: str = ""
    traceparent: str | None = None

    def for_step(self, step: str, function: str) -> PipelineContext:
        """The same run, addressed to another step."""
        return PipelineContext(
            self.pipeline, self.version, self.run, step, function, self.traceparent
        )


@dataclass(frozen=True)
class Event:
    """One kpipe event: a CloudEvent's attributes plus its JSON data.

    ``key_id`` and ``signature`` are set on a signed event (:mod:`eventing.signing`).
    """

    type: EventType
    source: str
    data: JSON
    context: PipelineContext | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subject: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    key_id: str | None = None
    signature: str | None = None


@dataclass(frozen=True)
class ObjectCreated:
    """Data of ``io.kpipe.object.created``: one new object in a bucket."""

    bucket: str
    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.bucket, self.key)

    def event_id(self) -> str:
        """A stable id, so a duplicated notification gives a duplicated id."""
        identity = "\0".join((self.bucket, self.key, self.etag, self.version_id or ""))
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    def to_data(self) -> JSON:
        data: JSON = {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "content_type": self.content_type,
        }
        if self.version_id is not None:
            data["version_id"] = self.version_id
        if self.sequencer is not None:
            data["sequencer"] = self.sequencer
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ObjectCreated:
        ref = ObjectRef.from_data(data)
        size = _require(data, "size", int)
        if size < 0:
            raise MalformedEvent("object size must not be negative", field="size")
        version_id = data.get("version_id")
        sequencer = data.get("sequencer")
        return cls(
            bucket=ref.bucket,
            key=ref.key,
            size=size,
            etag=_require(data, "etag", str),
            content_type=str(data.get("content_type") or "application/octet-stream"),
            version_id=str(version_id) if version_id is not None else None,
            sequencer=str(sequencer) if sequencer is not None else None,
        )

    def to_event(self, source: str) -> Event:
        return Event(
            type=EventType.OBJECT_CREATED,
            source=source,
            data=self.to_data(),
            id=self.event_id(),
            subject=f"{self.bucket}/{self.key}",
        )


@dataclass(frozen=True)
class StepOutput:
    """What one finished step produced: object refs and small metadata."""

    outputs: tuple[ObjectRef, ...] = ()
    metadata: JSON = field(default_factory=dict)

    def to_data(self) -> JSON:
        return {"outputs": [o.to_data() for o in self.outputs], "metadata": self.metadata}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepOutput:
        outputs = _require(data, "outputs", list)
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise MalformedEvent("step metadata must be a JSON object", field="metadata")
        return cls(tuple(ObjectRef.from_data(o) for o in outputs), metadata)


@dataclass(frozen=True)
class StepCall:
    """One step to run: its id in the pipeline, its part and its params."""

    id: str
    function: str
    params: JSON = field(default_factory=dict)

    def to_data(self) -> JSON:
        return {"id": self.id, "function": self.function, "params": self.params}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepCall:
        if not isinstance(data, Mapping):
            raise MalformedEvent("each step call must be a JSON object", field="calls")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise MalformedEvent("step params must be a JSON object", field="params")
        return cls(_require(data, "id", str), _require(data, "function", str), params)


@dataclass(frozen=True)
class BucketScope:
    """Which buckets a part may read runs' sources from, and which it may write into.

    ``sources`` are the trigger buckets (uploads: reading them starts nothing,
    writing them would start runs); ``outputs`` are where pipelines write.
    The two never overlap, so no step can write into a bucket that starts runs.

    Example:
        >>> scope = BucketScope(frozenset({"uploads"}), frozenset({"processed"}))
        >>> context = PipelineContext("p", 1, "r1")
        >>> scope.write_violation(ObjectRef("processed", "p.jpg"), context, final=True)
        'output processed/p.jpg is outside processed/p/'
    """

    sources: frozenset[str] = frozenset({"uploads"})
    outputs: frozenset[str] = frozenset({"processed"})

    @classmethod
    def from_settings(cls, buckets: BucketSettings | None = None) -> BucketScope:
        """``KPIPE_SOURCE_BUCKETS`` and ``KPIPE_OUTPUT_BUCKETS`` (ValueError if they overlap)."""
        buckets = buckets or BucketSettings()
        return cls(buckets.source_buckets(), buckets.output_buckets())

    def __post_init__(self) -> None:
        both = self.sources & self.outputs
        if both:
            raise ValueError(f"bucket(s) {sorted(both)} are both trigger and output buckets")

    def read_violation(
        self, ref: ObjectRef, source: ObjectRef, context: PipelineContext
    ) -> str | None:
        """Why a step of ``context``'s run may not read ``ref``, or None.

        It may read the run's source, in a trigger bucket, and the run's own
        intermediates, in an output bucket.
        """
        if ref == source:
            if ref.bucket in self.sources:
                return None
            return (
                f"the source {ref} is not in a trigger bucket ({', '.join(sorted(self.sources))})"
            )
        own = run_prefix(context.pipeline, context.run)
        if ref.bucket in self.outputs and ref.is_under(ref.bucket, own):
            return None
        return f"input {ref} is neither the run's source nor one of its intermediates"

    def write_violation(
        self, target: ObjectRef, context: PipelineContext, final: bool
    ) -> str | None:
        """Why a step of ``context``'s run may not write ``target``, or None.

        ``target`` is the key really written (after the part changed its
        extension): under the pipeline's prefix of an output bucket, and under
        the run's own prefix unless it is a final output.
        """
        if target.bucket not in self.outputs:
            return f"output {target} is not in an output bucket ({', '.join(sorted(self.outputs))})"
        runs = pipeline_prefix(context.pipeline) + RUNS_DIR + "/"
        allowed = (
            pipeline_prefix(context.pipeline)
            if final
            else run_prefix(context.pipeline, context.run)
        )
        if not target.is_under(target.bucket, allowed) or target.key.endswith("/"):
            return f"output {target} is outside {target.bucket}/{allowed}"
        if final and target.key.startswith(runs):
            # Final keys never enter the runs' folder (router.keys escapes it).
            return f"a final output {target} may not be among the runs' intermediates"
        return None


@dataclass(frozen=True)
class StepRequest:
    """Data of ``io.kpipe.step.requested``: what a part must do.

    ``calls`` holds one step, or several consecutive steps when the pipeline
    fuses them: the part then runs them in memory and writes only the last
    one's output.

    ``output`` is where the (last) step writes its image. The part keeps the
    key's stem and changes only its extension when it changes the format, so
    a redelivered request overwrites the same object. ``final`` says the
    output is a pipeline output: a part that makes no new image (a detector)
    then copies its input there.
    """

    source: ObjectRef
    inputs: tuple[ObjectRef, ...]
    calls: tuple[StepCall, ...]
    output: ObjectRef
    final: bool = False
    upstream: Mapping[str, StepOutput] = field(default_factory=dict)
    attempt: int = 1
    # The etag of the source version the run was started for: parts read
    # that version only, and a final write checks it is still current.
    source_etag: str | None = None

    def scope_violation(self, context: PipelineContext, scope: BucketScope) -> str | None:
        """Why this request reaches outside its run, or None when it stays inside.

        Every input must be readable (:meth:`BucketScope.read_violation`) and
        the requested output writable (:meth:`BucketScope.write_violation`);
        the part checks the key it really writes again, once it is known.
        """
        for ref in self.inputs:
            violation = scope.read_violation(ref, self.source, context)
            if violation is not None:
                return violation
        return scope.write_violation(self.output, context, self.final)

    def to_data(self) -> JSON:
        return {
            "source": self.source.to_data(),
            "inputs": [i.to_data() for i in self.inputs],
            "calls": [c.to_data() for c in self.calls],
            "output": self.output.to_data(),
            "final": self.final,
            "upstream": {k: v.to_data() for k, v in self.upstream.items()},
            "attempt": self.attempt,
            **({"source_etag": self.source_etag} if self.source_etag else {}),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepRequest:
        inputs = _require(data, "inputs", list)
        calls = _require(data, "calls", list)
        if not inputs:
            raise MalformedEvent("a step request needs at least one input", field="inputs")
        if not calls:
            raise MalformedEvent("a step request needs at least one call", field="calls")
        upstream = data.get("upstream", {})
        if not isinstance(upstream, dict):
            raise MalformedEvent("upstream must be a JSON object", field="upstream")
        attempt = data.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise MalformedEvent("attempt must be a positive integer", field="attempt")
        source_etag = data.get("source_etag")
        if source_etag is not None and (not isinstance(source_etag, str) or not source_etag):
            raise MalformedEvent("source_etag must be a non-empty string", field="source_etag")
        return cls(
            source=ObjectRef.from_data(_require(data, "source", dict)),
            inputs=tuple(ObjectRef.from_data(i) for i in inputs),
            calls=tuple(StepCall.from_data(c) for c in calls),
            output=ObjectRef.from_data(_require(data, "output", dict)),
            final=bool(data.get("final", False)),
            upstream={str(k): StepOutput.from_data(v) for k, v in upstream.items()},
            attempt=attempt,
            source_etag=source_etag,
        )


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    """``data[name]`` if it is a list, [] if absent; MalformedEvent otherwise."""
    value = data.get(name, [])
    if not isinstance(value, list):
        raise MalformedEvent(f"event data field {name!r} must be a list", field=name)
    return value


def _attempt(data: Mapping[str, Any]) -> int | None:
    """The ``attempt`` a reply answers (None from a part that does not say)."""
    attempt = data.get("attempt")
    if attempt is None:
        return None
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise MalformedEvent("attempt must be a positive integer", field="attempt")
    return attempt


@dataclass(frozen=True)
class StepCompleted:
    """Data of ``io.kpipe.step.completed``.

    ``attempt`` is the request's, so the router can tell the answer to a
    retried step from a late (or replayed) answer to an earlier attempt.
    ``cpu_ms`` is the CPU time the step's thread used, ``inference_ms`` the
    time it waited for Triton's answers (None from a part that does not say).
    """

    result: StepOutput
    duration_ms: float = 0.0
    attempt: int | None = None
    cpu_ms: float | None = None
    inference_ms: float | None = None

    def to_data(self) -> JSON:
        data: JSON = {**self.result.to_data(), "duration_ms": round(self.duration_ms, 3)}
        if self.attempt is not None:
            data["attempt"] = self.attempt
        if self.cpu_ms is not None:
            data["cpu_ms"] = round(self.cpu_ms, 3)
        if self.inference_ms is not None:
            data["inference_ms"] = round(self.inference_ms, 3)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepCompleted:
        return cls(
            StepOutput.from_data(data),
            _milliseconds(data, "duration_ms", 0.0) or 0.0,
            _attempt(data),
            _milliseconds(data, "cpu_ms"),
            _milliseconds(data, "inference_ms"),
        )


def _milliseconds(data: Mapping[str, Any], name: str, default: float | None = None) -> float | None:
    """A non-negative number of milliseconds named ``name``, or ``default`` when it is absent."""
    value = data.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise MalformedEvent(f"{name} must be a non-negative number", field=name)
    return float(value)


@dataclass(frozen=True)
class StepFailed:
    """Data of ``io.kpipe.step.failed``: why a step failed (and which attempt)."""

    code: str
    message: str
    retryable: bool = False
    attempt: int | None = None

    def to_data(self) -> JSON:
        data: JSON = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.attempt is not None:
            data["attempt"] = self.attempt
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> StepFailed:
        return cls(
            code=_require(data, "code", str),
            message=_require(data, "message", str),
            retryable=bool(data.get("retryable", False)),
            attempt=_attempt(data),
        )


@dataclass(frozen=True)
class RunFinished:
    """Data of ``io.kpipe.run.completed`` and ``io.kpipe.run.failed``."""

    run: str
    pipeline: str
    version: int
    status: str
    source: ObjectRef
    outputs: tuple[ObjectRef, ...] = ()
    error: StepFailed | None = None

    def to_data(self) -> JSON:
        return {
            "run": self.run,
            "pipeline": self.pipeline,
            "version": self.version,
            "status": self.status,
            "source": self.source.to_data(),
            "outputs": [o.to_data() for o in self.outputs],
            "error": self.error.to_data() if self.error else None,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RunFinished:
        error = data.get("error")
        return cls(
            run=_require(data, "run", str),
            pipeline=_require(data, "pipeline", str),
            version=_require(data, "version", int),
            status=_require(data, "status", str),
            source=ObjectRef.from_data(_require(data, "source", dict)),
            outputs=tuple(ObjectRef.from_data(o) for o in _list(data, "outputs")),
            error=StepFailed.from_data(error) if isinstance(error, dict) else None,
        )


def step_event_id(context: PipelineContext, attempt: int, kind: EventType) -> str:
    """A stable event id per run, step, attempt and kind.

    A redelivered event keeps its id, so a receiver can drop duplicates by
    CloudEvents ``source`` + ``id``; a retried step gets a new attempt and so
    a new id.
    """
    return f"{context.run}.{context.step}.{attempt}.{kind.value.removeprefix('io.kpipe.')}"
