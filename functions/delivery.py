"""One broker delivery to a part: authenticate it, run its step, answer with a CloudEvent.

:func:`handle_http` takes a delivery's headers and body and gives the HTTP
answer the Knative broker expects, free of any web framework:

- 200 with a signed ``step.completed`` or ``step.failed`` CloudEvent;
- 400 for an event that is not a step request for this function;
- 401 for a request that is not signed by the router (or, when the part is
  configured with the cluster's OIDC issuer, without a valid broker token);
- 403 for a signed request that names objects outside its run;
- 503 for a retryable failure (Triton or the object store down) while the
  request is younger than ``KPIPE_RETRY_FOR_S``, so the broker redelivers it.

A part does nothing, not even a read, for a request refused here. A replayed
request is harmless: it names the same run's objects and writes the same
deterministic output key again, and its answer carries the same attempt.

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
from datetime import UTC, datetime
from typing import Any, NamedTuple

from eventing.contract import (
    JSON,
    Event,
    EventType,
    PipelineContext,
    StepFailed,
    StepRequest,
    step_event_id,
)
from eventing.errors import MalformedEvent
from eventing.http import from_http, to_http
from eventing.objectstore import ObjectStoreError
from eventing.oidc import OIDCError
from eventing.signing import Unauthenticated
from functions.errors import OutOfScope, StepError
from functions.runtime import StepRuntime
from functions.step import run_request
from kpipe.core.http_status import error_json, status_for
from kpipe.core.logs import log_context

logger = logging.getLogger(__name__)


# What a step ends with: a part's own errors and the object store's.
StepFailure = StepError | ObjectStoreError


class RetryLater(StepError):
    """A retryable step error on a request young enough for the broker to redeliver; 503."""

    code = "unavailable"
    retryable = True

    def __init__(self, cause: StepFailure, age_s: float, retry_for_s: float) -> None:
        super().__init__(str(cause))
        self.cause_code = cause.code
        self.age_s = age_s
        self.retry_for_s = retry_for_s


# What a part answers without an event (the status is kpipe.core.http_status's):
# the broker must not retry a 4xx, and redelivers a 503.
_WITHOUT_EVENT = (MalformedEvent, Unauthenticated, OIDCError, OutOfScope, RetryLater)


class HttpReply(NamedTuple):
    """An HTTP answer, free of any web framework."""

    status: int
    headers: dict[str, str]
    body: bytes


def handle_http(
    headers: Mapping[str, str], body: bytes, function_name: str, runtime: StepRuntime
) -> HttpReply:
    """Answer one broker delivery of a ``step.requested`` event (see the module docstring).

    Args:
        headers: The request headers (binary-mode CloudEvent).
        body: The request body.
        function_name: This function's name; events for another are refused.
        runtime: What the step runs with, and the keys it trusts and signs with.
    """
    try:
        delivery = _authenticated(headers, body, function_name, runtime)
    except _WITHOUT_EVENT as exc:
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


class _Admitted(NamedTuple):
    """A parsed step request, the run attributes its reply carries, and when it was sent."""

    request: StepRequest
    context: PipelineContext
    sent: datetime

    def age_s(self) -> float:
        """Seconds since the router sent the request (its CloudEvents ``time``)."""
        sent = self.sent if self.sent.tzinfo is not None else self.sent.replace(tzinfo=UTC)
        return (datetime.now(UTC) - sent).total_seconds()


def _authenticated(
    headers: Mapping[str, str], body: bytes, function_name: str, runtime: StepRuntime
) -> _Admitted:
    """The step request in a delivery, once it is known to come from kpipe's router.

    Raises:
        OIDCError: an OIDC verifier is configured and the broker's token is not valid.
        MalformedEvent: it is not a step request for this function.
        Unauthenticated: the router did not sign it.
        OutOfScope: it names an object outside its run.
    """
    if runtime.oidc is not None:
        lowered = {k.lower(): v for k, v in headers.items()}
        runtime.oidc.verify(lowered.get("authorization"))
    event = from_http(headers, body)
    if event.type is not EventType.STEP_REQUESTED:
        raise MalformedEvent(f"expected {EventType.STEP_REQUESTED}, got {event.type}", "type")
    runtime.trusted.verify(event)
    context = event.context
    if context is None:
        raise MalformedEvent("a step request must carry the kpipe run attributes", "kpiperun")
    if context.function != function_name:
        raise MalformedEvent(
            f"event for function {context.function!r} delivered to {function_name!r}",
            "kpipefunction",
        )
    request = StepRequest.from_data(event.data)
    violation = request.scope_violation(context, runtime.scope)
    if violation is not None:
        raise OutOfScope(f"run {context.run}: {violation}")
    return _Admitted(request, context, event.time)


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
    delivery: _Admitted, function_name: str, runtime: StepRuntime, traceparent: str | None
) -> HttpReply:
    metrics = runtime.metrics
    attempt = delivery.request.attempt
    try:
        completed = run_request(delivery.request, runtime, delivery.context, traceparent)
    except OutOfScope as exc:
        # The key really written fell outside the run: refused like the request.
        return _rejection(exc, function_name)
    except (StepError, ObjectStoreError) as exc:
        age_s, retry_for_s = delivery.age_s(), runtime.delivery.retry_for_s
        if exc.retryable and age_s < retry_for_s:
            return _rejection(RetryLater(exc, age_s, retry_for_s), function_name)
        failed = _failure(exc, age_s, retry_for_s, function_name, attempt)
    except Exception as exc:
        # A bug, not a bad input: keep the traceback, fail the step with a
        # message, and still answer with an event (never a bare 500).
        logger.exception("%s: unexpected error", function_name)
        failed = StepFailed("internal", f"{type(exc).__name__}: {exc}", False, attempt)
    else:
        logger.info(
            "%s: step done in %.0f ms -> %s",
            function_name,
            completed.duration_ms,
            ", ".join(str(o) for o in completed.result.outputs),
        )
        if metrics is not None:
            metrics.events_out.labels(function_name, EventType.STEP_COMPLETED.value).inc()
        return _event_reply(
            EventType.STEP_COMPLETED, completed.to_data(), function_name, delivery, runtime
        )
    if metrics is not None:
        metrics.events_out.labels(function_name, EventType.STEP_FAILED.value).inc()
        metrics.failures.labels(function_name, failed.code).inc()
    return _event_reply(EventType.STEP_FAILED, failed.to_data(), function_name, delivery, runtime)


def _failure(
    exc: StepFailure, age_s: float, retry_for_s: float, function_name: str, attempt: int
) -> StepFailed:
    """The step.failed of a step error; a retryable one has run out of redeliveries."""
    if not exc.retryable:
        logger.info("%s: step failed: %s", function_name, exc)
        return StepFailed(exc.code, str(exc), False, attempt)
    logger.warning("%s: step failed after %.0f s of redeliveries: %s", function_name, age_s, exc)
    message = (
        f"{exc} (still failing {age_s:.0f} s after the request was sent; "
        f"KPIPE_RETRY_FOR_S={retry_for_s:g})"
    )
    return StepFailed(exc.code, message, False, attempt)


def health_reply(function_name: str) -> HttpReply:
    """The answer to a GET on the function: it is up."""
    return _json_reply(200, {"function": function_name, "ready": True})


def _event_reply(
    kind: EventType, data: JSON, function_name: str, delivery: _Admitted, runtime: StepRuntime
) -> HttpReply:
    event = Event(
        type=kind,
        source=f"/kpipe/functions/{function_name}",
        data=data,
        context=delivery.context,
        id=step_event_id(delivery.context, delivery.request.attempt, kind),
        subject=str(delivery.request.source),
    )
    if runtime.signer is not None:
        event = runtime.signer.sign(event)
    headers, body = to_http(event)
    return HttpReply(200, headers, body)


def _rejection(exc: Exception, function_name: str) -> HttpReply:
    """The event-less answer to ``exc``, with its status from kpipe's one table."""
    status = status_for(exc)
    logger.warning("%s: answering %d: %s", function_name, status, exc)
    headers = {"content-type": "application/json"}
    field = getattr(exc, "field", None)
    if isinstance(exc, RetryLater):
        body = error_json(
            exc.cause_code,
            str(exc),
            retryable=True,
            age_s=round(exc.age_s, 3),
            retry_for_s=exc.retry_for_s,
        )
    else:
        body = error_json(str(getattr(exc, "code", "internal")), str(exc), field)
    if isinstance(exc, OIDCError) and status == 401:
        headers["www-authenticate"] = 'Bearer realm="kpipe"'
    return HttpReply(status, headers, body)


def _json_reply(status: int, data: Mapping[str, Any]) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, json.dumps(data).encode())
