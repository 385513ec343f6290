"""The router's probes: readiness of every component, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from router.deps import GUARDED, Services

# /healthz is open (a probe carries no secret); /metrics needs the API token when one is set.
open_probes = APIRouter()
guarded_probes = APIRouter(dependencies=GUARDED)


@open_probes.get("/healthz", tags=["health"])
def healthz(services: Services) -> JSONResponse:
    """200 when every component is ready, else 503 naming the one that is not."""
    health = services.health.check()
    return JSONResponse(health.to_data(), status_code=200 if health.ready else 503)


@guarded_probes.get("/metrics", tags=["health"], response_class=PlainTextResponse)
def metrics(services: Services) -> Response:
    """Prometheus metrics: events, step latency, failures by code, runs, queue depth."""
    body, content_type = services.telemetry.metrics()
    return Response(body, media_type=content_type)
