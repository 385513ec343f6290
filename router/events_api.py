"""The router's endpoints for the broker: events and dead letters, each signed by its sender."""

from __future__ import annotations

import base64
import json
import logging

from cloudevents.http import CloudEvent
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from eventing.contract import Event, EventType, StepFailed, StepRequest
from eventing.errors import MalformedEvent
from eventing.http import from_cloudevent, from_http, parse_cloudevent, to_http
from kpipe.core.logs import log_context
from router.deps import Body, Services
from router.services import RouterServices

log = logging.getLogger(__name__)
router = APIRouter()


@router.post("/events", tags=["events"], status_code=202)
async def events(request: Request, body: Body, services: Services) -> Response:
    """Consume one signed CloudEvent; answer with the next event, or 202 with no body."""
    await _check_broker_token(request, services)
    event = from_http(dict(request.headers), body)
    # Routing does blocking database work: keep it off the event loop.
    reply = await run_in_threadpool(route_event, services, event)
    if reply is None:
        return Response(status_code=202)
    headers, payload = to_http(reply)
    return Response(content=payload, headers=headers, status_code=200)


def route_event(services: RouterServices, event: Event) -> Event | None:
    """Handle one event for the router: the event to answer with, if any.

    What it leads to is committed in the outbox with the run's change. The
    first event is the answer; when there are others, the relay posts them
    to the broker (``K_SINK``) before this returns, and again later for any
    the broker did not take.

    Raises:
        Unauthenticated: the event is not signed by the role that may send it.
        MalformedEvent, RouterError: the event is not one the router can act on.
    """
    services.trusted.verify(event)
    services.metrics.observe_in(event)
    ctx = event.context
    attributes = {"kpipe.event.type": event.type.value, "kpipe.event.id": event.id}
    with (
        log_context(ctx.run if ctx else None, ctx.step if ctx else None),
        services.telemetry.span(
            f"route {event.type.value}", ctx.traceparent if ctx else None, attributes
        ),
    ):
        emitted = services.router.handle(event, reply=True)
    if not emitted:
        return None
    if len(emitted) > 1:
        services.flush()
    services.metrics.observe_out(emitted[:1])
    return services.sign(emitted[0])


@router.post("/dead-letters", tags=["events"], status_code=202)
async def dead_letters(request: Request, body: Body, services: Services) -> Response:
    """Record an event the broker gave up on as the failure of its run."""
    await _check_broker_token(request, services)
    ce = parse_cloudevent(dict(request.headers), body)
    await run_in_threadpool(handle_dead_letter, services, ce)
    return Response(status_code=202)


async def _check_broker_token(request: Request, services: Services) -> None:
    """With the cluster's OIDC issuer configured, only the broker's token gets in (401).

    Verifying may fetch the issuer's keys, so it runs off the event loop.
    """
    if services.oidc is not None:
        await run_in_threadpool(services.oidc.verify, request.headers.get("authorization"))


def handle_dead_letter(services: RouterServices, ce: CloudEvent) -> None:
    """Fail the run of a step request the broker could not deliver; route any other event.

    Raises:
        MalformedEvent: ``ce`` is not a kpipe event.
        Unauthenticated: it is not signed by the role that may send it.
    """
    event = services.trusted.verify(from_cloudevent(ce))
    if event.type is not EventType.STEP_REQUESTED:
        # An event meant for the router itself: handle it now, late but not lost.
        emitted = services.router.handle(event)
    elif event.context is None:
        raise MalformedEvent("a step request without kpiperun", field="kpiperun")
    else:
        # kpipe's own words, from the signed request; the broker's (unsigned
        # knativeerror* attributes) are kept apart, as the broker's.
        request = StepRequest.from_data(event.data)
        message = (
            f"step {event.context.step!r} could not be delivered to function "
            f"{event.context.function!r} after every retry"
        )
        failure = StepFailed("undeliverable", message, attempt=request.attempt)
        emitted = services.router.on_step_failed(event.context, failure, _broker_said(ce))
    if emitted:
        services.flush()  # committed in the outbox; the relay retries what the broker refuses


def _broker_said(ce: CloudEvent) -> str | None:
    """What the broker says of a dead letter (Knative's unsigned ``knativeerror*``), or None.

    Shown as the broker's words, never as kpipe's: nobody signs them.
    """
    code = ce.get("knativeerrorcode")
    if not code:
        return None
    return f"the last answer was HTTP {str(code)[:8]}{_said(ce.get('knativeerrordata'))}"


def _said(error_data: object) -> str:
    """What a subscriber's last answer said (Knative's ``knativeerrordata``), briefly."""
    if not isinstance(error_data, str):
        return ""
    try:
        text = base64.b64decode(error_data, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        text = error["message"]  # kpipe's one error body (kpipe.core.http_status)
    return f": {text.strip()[:300]}" if text.strip() else ""
