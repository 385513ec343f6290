"""The local broker's HTTP ingress (Knative's URL shape) as an ASGI app.

``POST /`` or ``POST /{namespace}/{broker}`` takes a CloudEvent in binary or
structured mode and answers 202 once it is stored in the broker's durable
queue (400 malformed, 413 too large, 503 busy). ``GET /healthz`` and
``GET /status`` (JSON counters) help supervisors and tests.

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
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventing.errors import MalformedEvent
from eventing.http import parse_cloudevent
from kpipe.core.http_body import BodyTooLarge, read_body
from kpipe.core.http_status import error_body, status_for
from kpipe.local.broker.core import Broker
from kpipe.local.broker.errors import BrokerBusy
from kpipe.local.broker.triggers import BrokerConfig

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 4 << 20


def create_ingress_app(
    broker: Broker | None = None, *, max_event_bytes: int = MAX_EVENT_BYTES
) -> Starlette:
    """The ingress routes over a broker that someone else starts and stops.

    Args:
        broker: the running broker (else ``app.state.broker``, set by a lifespan).
        max_event_bytes: the largest event accepted.
    """

    async def ingress(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        try:
            body = await read_body(request, max_event_bytes)
            ce = parse_cloudevent(request.headers, body)
            broker.ingest(ce)
        except (MalformedEvent, BodyTooLarge, BrokerBusy) as exc:
            status = status_for(exc)
            if status == 400:
                broker.counters["rejected_malformed"] += 1
            log.info("ingress refused an event (%d): %s", status, exc.message)
            answer = error_body(exc.code, exc.message, getattr(exc, "field", None))
            return JSONResponse(answer, status_code=status)
        return Response(status_code=202)

    async def healthz(request: Request) -> Response:
        return Response(status_code=200)

    async def status(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        return JSONResponse(broker.status())

    app = Starlette(
        routes=[
            Route("/", ingress, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
            Route("/{namespace}/{broker}", ingress, methods=["POST"]),
        ]
    )
    if broker is not None:
        app.state.broker = broker
    return app


def create_broker_app(
    config: BrokerConfig,
    *,
    concurrency: int = 32,
    max_event_bytes: int = MAX_EVENT_BYTES,
    queue_path: Path | str = ":memory:",
) -> Starlette:
    """The broker's ASGI app; the broker starts and stops with the app's lifespan.

    Args:
        config: triggers and delivery defaults.
        concurrency: deliveries in flight per trigger.
        max_event_bytes: the largest event accepted.
        queue_path: the broker's durable queue (an SQLite file).

    Returns:
        A Starlette app; ``app.state.broker`` is the running :class:`Broker`.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Broker(config, concurrency=concurrency, queue_path=queue_path) as broker:
            app.state.broker = broker
            yield

    app = create_ingress_app(max_event_bytes=max_event_bytes)
    app.router.lifespan_context = lifespan
    return app
