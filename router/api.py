"""The router's HTTP app: the REST API, the broker's event endpoints and the web page.

What one process serves is ``KPIPE_ROUTER_SERVES``:

| serves | endpoints |
|---|---|
| ``all`` (default, local) | everything below |
| ``api`` (public) | ``/v1/...``, the web page (``/``, ``/static``), the docs |
| ``events`` (cluster-local) | ``/events``, ``/dead-letters`` for the broker, the docs |

and every one serves ``/healthz`` and ``/metrics``. With ``KPIPE_API_TOKEN``
set, ``/v1/...`` and ``/metrics`` need ``Authorization: Bearer <token>``.
Open without it: ``/healthz`` (probes cannot carry a secret), the web page's
files (no data in them; the page asks for the token), the OpenAPI docs (the
API's shape, no data) and the broker's ``/events`` and ``/dead-letters``
(whose events are authenticated by their signatures instead).

Example:
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app(services))  # doctest: +SKIP
    >>> auth = {"Authorization": "Bearer s3cret"}  # with KPIPE_API_TOKEN=s3cret
    >>> client.get("/v1/pipelines", headers=auth).json()  # doctest: +SKIP
    []
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router import events_api, pipelines_api, probes_api, runs_api
from router.deps import GUARDED
from router.responses import install_error_handlers
from router.services import RouterServices
from router.views import ErrorOut
from router.web import mount_web


def create_app(services: RouterServices) -> FastAPI:
    """The FastAPI app of the router over ready-made services, which it starts and closes."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()

    error = {"model": ErrorOut}
    app = FastAPI(
        title="kpipe",
        version="0.1.0",
        summary="Serverless image-processing pipelines on Knative",
        lifespan=lifespan,
        responses={400: error, 401: error, 404: error, 413: error, 422: error},
    )
    app.state.services = services
    install_error_handlers(app)
    serves = services.settings.serves
    app.include_router(probes_api.open_probes)
    app.include_router(probes_api.guarded_probes)
    if serves in ("all", "events"):
        app.include_router(events_api.router)
    if serves in ("all", "api"):
        app.include_router(pipelines_api.router, dependencies=GUARDED)
        app.include_router(runs_api.router, dependencies=GUARDED)
        mount_web(app)
    return app
