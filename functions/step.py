"""The step SDK: run a step request, and answer a broker delivery with its result.

:func:`run_request` fetches and decodes the inputs, runs the requested part
(or, fused, several parts in memory), then encodes and stores the output.
:func:`handle_http` wraps it for one HTTP delivery: CloudEvent in, CloudEvent
out, with the status codes the Knative broker expects.

Output keys: the output keeps the requested key's directory and stem and
takes the encoded format's extension (``.jpg``, ``.png``, ``.webp``), so a
redelivered request overwrites the same object.

Metadata of a fused group: the last step's metadata at top level, plus
``"steps": {step_id: metadata}`` for every step of the group (so ``steps`` is
a reserved key).

Example:
    >>> status, headers, body = health_reply("resize")
    >>> (status, body)
    (200, b'{"function": "resize", "ready": true}')
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from eventing.contract import (
    JSON,
    Event,
    EventType,
    ObjectRef,
    PipelineContext,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
    step_event_id,
)
from eventing.errors import MalformedEvent
from eventing.http import from_http, to_http
from functions.errors import StepError, StoreUnavailable
from functions.images import decode, encode
from functions.part import Picture, StepContext
from functions.runtime import StepRuntime
from kpipe.logs import log_context

logger = logging.getLogger(__name__)

# The one status table. A step error not listed here is answered 200 with a
# step.failed event; these are answered without an event: 400 the broker
# must not retry, 503 it must redeliver.
_STATUS_WITHOUT_EVENT: dict[type[Exception], int] = {
    MalformedEvent: 400,
    StoreUnavailable: 503,
}


class HttpReply(NamedTuple):
    """An HTTP answer, free of any web framework."""

    status: int
    headers: dict[str, str]
    body: bytes


class UnsafeOutput(StepError, ValueError):
    """The output key would overwrite the step's source or input object."""

    code = "unsafe_output"


def run_request(
    request: StepRequest, runtime: StepRuntime, traceparent: str | None = None
) -> StepCompleted:
    """Run every call of ``request`` and store the final picture.

    Args:
        request: What to run, on which inputs, and where to write.
        runtime: The store, catalogue, inference factory and image limits.
        traceparent: The step span's trace context, passed on to Triton.

    Returns:
        The output ref(s) and the metadata (see the module docstring).

    Raises:
        StepError: Any part, decode or store failure (UnknownFunction,
            BadParams, BadImage, ObjectMissing, StoreUnavailable, ...).
    """
    started = time.perf_counter()
    # Resolve and validate every call before any I/O: bad params fail fast.
    plan = [(call, runtime.catalog.get(call.function)) for call in request.calls]
    params = [part.parse_params(call.params) for call, part in plan]
    max_pixels = runtime.images.max_pixels
    pictures = [decode(runtime.store.get(ref), ref, max_pixels) for ref in request.inputs]
    upstream: dict[str, StepOutput] = dict(request.upstream)
    per_step: dict[str, JSON] = {}
    produced = False
    for (call, part), call_params in zip(plan, params, strict=True):
        context = StepContext(
            source=request.source,
            upstream=dict(upstream),
            inference=runtime.inference,
            step_id=call.id,
            traceparent=traceparent,
        )
        result = part.run(pictures, call_params, context)
        if result.picture is not None:
            pictures, produced = [result.picture], True
        per_step[call.id] = result.metadata
        upstream[call.id] = StepOutput((), result.metadata)
    output = _store_output(request, pictures[0], produced, runtime)
    metadata = dict(per_step[request.calls[-1].id])
    if len(request.calls) > 1:
        metadata["steps"] = per_step
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return StepCompleted(StepOutput((output,), metadata), elapsed_ms)


def output_ref(requested: ObjectRef, extension: str) -> ObjectRef:
    """``requested`` with its extension replaced by ``extension`` (``.jpg`` ...).

    Example:
        >>> output_ref(ObjectRef("out", "runs/r1/cat.png"), ".jpg").key
        'runs/r1/cat.jpg'
    """
    path = PurePosixPath(requested.key)
    return ObjectRef(requested.bucket, str(path.with_name(path.stem + extension)))


def _store_output(
    request: StepRequest, picture: Picture, produced: bool, runtime: StepRuntime
) -> ObjectRef:
    """Write (or copy, or pass through) the step's output; its ref."""
    source = request.inputs[0]
    if produced:
        data, content_type, extension = encode(picture)
        target = _safe(output_ref(request.output, extension), request)
        runtime.store.put(target, data, content_type)
        return target
    if not request.final:
        return source  # a detector mid-pipeline: the next step reads its input
    # A detector at the end of a pipeline: its output is a copy of its input.
    target = _safe(output_ref(request.output, PurePosixPath(source.key).suffix), request)
    runtime.store.copy(source, target)
    return target


def _safe(target: ObjectRef, request: StepRequest) -> ObjectRef:
    if target == request.source or target in request.inputs:
        raise UnsafeOutput(f"output {target} would overwrite an input of the step")
    return target


def handle_http(
    headers: Mapping[str, str], body: bytes, function_name: str, runtime: StepRuntime
) -> HttpReply:
    """Answer one broker delivery of a ``step.requested`` event.

    Args:
        headers: The request headers (binary-mode CloudEvent).
        body: The request body.
        function_name: This function's name; events for another are refused.
        runtime: What the step runs with.

    Returns:
        200 with a ``step.completed`` or ``step.failed`` CloudEvent; 400 with
        a JSON error for an event that is not a step request for this
        function; 503 with a JSON error when the object store is down, so
        the broker redelivers.
    """
    try:
        delivery = _parse(headers, body, function_name)
    except MalformedEvent as exc:
        return _rejection(exc, function_name)
    except Exception as exc:
        # Not even run attributes to answer a step.failed with: refuse it.
        logger.exception("%s: unreadable delivery", function_name)
        return _rejection(MalformedEvent(f"{type(exc).__name__}: {exc}"), function_name)
    context = delivery.context
    metrics = runtime.metrics
    if metrics is not None:
        metrics.events_in.labels(function_name).inc()
    with log_context(context.run, context.step), _observed(runtime, function_name, context) as tp:
        reply = _run_and_reply(delivery, function_name, runtime, tp)
    return reply


@contextmanager
def _observed(
    runtime: StepRuntime, function_name: str, context: PipelineContext
) -> Iterator[str | None]:
    """Time the step, count it in flight, and run it inside a span of the run's trace."""
    metrics, telemetry = runtime.metrics, runtime.telemetry
    started = time.perf_counter()
    if metrics is not None:
        metrics.in_flight.labels(function_name).inc()
    try:
        if telemetry is None:
            yield context.traceparent
        else:
            attributes = {
                "kpipe.run": context.run,
                "kpipe.step": context.step,
                "kpipe.pipeline": context.pipeline,
            }
            with telemetry.span(f"step {function_name}", context.traceparent, attributes) as tp:
                yield tp
    finally:
        if metrics is not None:
            metrics.in_flight.labels(function_name).dec()
            metrics.step_seconds.labels(function_name).observe(time.perf_counter() - started)


def _run_and_reply(
    delivery: _Delivery, function_name: str, runtime: StepRuntime, traceparent: str | None
) -> HttpReply:
    metrics = runtime.metrics
    try:
        completed = run_request(delivery.request, runtime, traceparent)
    except tuple(_STATUS_WITHOUT_EVENT) as exc:
        return _rejection(exc, function_name)
    except StepError as exc:
        logger.info("%s: step failed: %s", function_name, exc)
        failed = StepFailed(exc.code, str(exc), exc.retryable)
    except Exception as exc:
        # A bug, not a bad input: keep the traceback, fail the step with a
        # message, and still answer with an event (never a bare 500).
        logger.exception("%s: unexpected error", function_name)
        failed = StepFailed("internal", f"{type(exc).__name__}: {exc}", retryable=False)
    else:
        logger.info(
            "%s: step done in %.0f ms -> %s",
            function_name,
            completed.duration_ms,
            ", ".join(str(o) for o in completed.result.outputs),
        )
        if metrics is not None:
            metrics.events_out.labels(function_name, EventType.STEP_COMPLETED.value).inc()
        return _event_reply(EventType.STEP_COMPLETED, completed.to_data(), function_name, delivery)
    if metrics is not None:
        metrics.events_out.labels(function_name, EventType.STEP_FAILED.value).inc()
        metrics.failures.labels(function_name, failed.code).inc()
    return _event_reply(EventType.STEP_FAILED, failed.to_data(), function_name, delivery)


def health_reply(function_name: str) -> HttpReply:
    """The answer to a GET on the function: it is up."""
    return _json_reply(200, {"function": function_name, "ready": True})


class _Delivery(NamedTuple):
    """A parsed step request and the run attributes its reply carries."""

    request: StepRequest
    context: PipelineContext


def _parse(headers: Mapping[str, str], body: bytes, function_name: str) -> _Delivery:
    """The step request in a delivery; MalformedEvent if it is not one for us.

    Anything else it raises is a bug and is answered 400 as well: an event we
    cannot read has no run attributes to put on a step.failed reply.
    """
    event = from_http(headers, body)
    if event.type is not EventType.STEP_REQUESTED:
        raise MalformedEvent(f"expected {EventType.STEP_REQUESTED}, got {event.type}", "type")
    context = event.context
    if context is None:
        raise MalformedEvent("a step request must carry the kpipe run attributes", "kpiperun")
    if context.function != function_name:
        raise MalformedEvent(
            f"event for function {context.function!r} delivered to {function_name!r}",
            "kpipefunction",
        )
    return _Delivery(StepRequest.from_data(event.data), context)


def _event_reply(kind: EventType, data: JSON, function_name: str, delivery: _Delivery) -> HttpReply:
    event = Event(
        type=kind,
        source=f"/kpipe/functions/{function_name}",
        data=data,
        context=delivery.context,
        id=step_event_id(delivery.context, delivery.request.attempt, kind),
        subject=str(delivery.request.source),
    )
    headers, body = to_http(event)
    return HttpReply(200, headers, body)


def _rejection(exc: Exception, function_name: str) -> HttpReply:
    """The event-less answer the status table gives ``exc``."""
    status = next(code for kind, code in _STATUS_WITHOUT_EVENT.items() if isinstance(exc, kind))
    logger.warning("%s: answering %d: %s", function_name, status, exc)
    return _json_reply(status, {"error": _code(exc), "message": str(exc)})


def _json_reply(status: int, data: Mapping[str, Any]) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, json.dumps(data).encode())


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", "internal"))
