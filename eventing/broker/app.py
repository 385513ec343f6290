"""The local broker's HTTP ingress (Knative's URL shape) as an ASGI app.

``POST /`` or ``POST /{namespace}/{broker}`` takes a CloudEvent in binary or
structured mode and answers 202 once it is queued (400 malformed, 413 too
large, 503 busy). ``GET /healthz`` and ``GET /status`` (JSON counters) help
supervisors and tests.

Example:
    >>> from starlette.testclient import TestClient
    >>> with TestClient(create_broker_app(BrokerConfig())) as client:
    ...     client.get("/healthz").status_code
    200
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventing._body import BodyTooLarge, read_body
from eventing.broker.core import Broker
from eventing.broker.errors import BrokerBusy
from eventing.broker.triggers import BrokerConfig
from eventing.errors import EventingError, MalformedEvent
from eventing.http import parse_cloudevent

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 4 << 20

# The one table from error to HTTP status.
_STATUS: dict[type[EventingError], int] = {MalformedEvent: 400, BodyTooLarge: 413, BrokerBusy: 503}


def create_broker_app(
    config: BrokerConfig, *, concurrency: int = 32, max_event_bytes: int = MAX_EVENT_BYTES
) -> Starlette:
    """The broker's ASGI app; the broker starts and stops with the app's lifespan.

    Args:
        config: triggers and delivery defaults.
        concurrency: deliveries in flight per trigger.
        max_event_bytes: the largest event accepted.

    Returns:
        A Starlette app; ``app.state.broker`` is the running :class:`Broker`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Broker(config, concurrency=concurrency) as broker:
            app.state.broker = broker
            yield

    async def ingress(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        try:
            body = await read_body(request, max_event_bytes)
            ce = parse_cloudevent(request.headers, body)
            broker.ingest(ce)
        except (MalformedEvent, BodyTooLarge, BrokerBusy) as exc:
            status = next(s for kind, s in _STATUS.items() if isinstance(exc, kind))
            if status == 400:
                broker.counters["rejected_malformed"] += 1
            log.info("ingress refused an event (%d): %s", status, exc.message)
            return JSONResponse({"error": exc.code, "message": exc.message}, status_code=status)
        return Response(status_code=202)

    async def healthz(request: Request) -> Response:
        return Response(status_code=200)

    async def status(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        return JSONResponse(broker.status())

    return Starlette(
        routes=[
            Route("/", ingress, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
            Route("/{namespace}/{broker}", ingress, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
