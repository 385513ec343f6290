"""The router's endpoints for the broker (events, dead letters) and for probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from eventing.contract import Event, EventType
from eventing.errors import DeliveryFailed, MalformedEvent
from eventing.http import from_cloudevent, from_http, parse_cloudevent, to_http
from kpipe.logs import log_context
from router.deps import Body, Services
from router.responses import error_response
from router.services import RouterServices

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz(services: Services) -> JSONResponse:
    """200 when every component is ready, else 503 naming the one that is not."""
    health = services.health.check()
    return JSONResponse(health.to_data(), status_code=200 if health.ready else 503)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def metrics(services: Services) -> Response:
    """Prometheus metrics: events, step latency, failures by code, runs, queue depth."""
    body, content_type = services.telemetry.metrics()
    return Response(body, media_type=content_type)


@router.post("/events", tags=["events"], status_code=202)
async def events(request: Request, body: Body, services: Services) -> Response:
    """Consume one CloudEvent; answer with the next event, or 202 with no body."""
    event = from_http(dict(request.headers), body)
    # Routing does blocking database and HTTP work: keep it off the event loop.
    return await run_in_threadpool(_route, services, event)


def _route(services: RouterServices, event: Event) -> Response:
    services.metrics.observe_in(event)
    ctx = event.context
    attributes = {"kpipe.event.type": event.type.value, "kpipe.event.id": event.id}
    with (
        log_context(ctx.run if ctx else None, ctx.step if ctx else None),
        services.telemetry.span(
            f"route {event.type.value}", ctx.traceparent if ctx else None, attributes
        ),
    ):
        emitted = services.router.handle(event)
    if not emitted:
        return Response(status_code=202)
    reply, *extra = emitted
    for other in extra:
        try:
            services.send(other)
        except DeliveryFailed as exc:
            # The broker redelivers this event; the router then re-sends the
            # requests that still have no answer.
            log.warning("could not post %s to the broker: %s", other.type, exc.message)
            return error_response(503, exc.code, exc.message)
    services.metrics.observe_out([reply])
    headers, payload = to_http(reply)
    return Response(content=payload, headers=headers, status_code=200)


@router.post("/dead-letters", tags=["events"], status_code=202)
def dead_letters(request: Request, body: Body, services: Services) -> Response:
    """Record an event the broker gave up on as the failure of its run."""
    ce = parse_cloudevent(dict(request.headers), body)
    event = from_cloudevent(ce)
    if event.type is not EventType.STEP_REQUESTED:
        # An event meant for the router itself: handle it now, late but not lost.
        emitted = services.router.handle(event)
    elif event.context is None:
        raise MalformedEvent("a step request without kpiperun", field="kpiperun")
    else:
        code = ce.get("knativeerrorcode")
        reason = f" (last answer: HTTP {code})" if code else ""
        message = (
            f"step {event.context.step!r} could not be delivered to function "
            f"{event.context.function!r} after every retry{reason}"
        )
        error = {"step": event.context.step, "code": "undeliverable", "message": message}
        emitted = services.router.fail_run(event.context.run, error)
    for follow_up in emitted:
        try:
            services.send(follow_up)
        except DeliveryFailed as exc:
            log.warning("could not post %s to the broker: %s", follow_up.type, exc.message)
    return Response(status_code=202)
