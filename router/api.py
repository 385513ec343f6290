"""The router's HTTP app: the REST API, the broker's event endpoints and the web page.

Example:
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app(services))  # doctest: +SKIP
    >>> client.get("/v1/pipelines").json()  # doctest: +SKIP
    []
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router import events_api, pipelines_api, runs_api
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
    app.include_router(events_api.router)
    app.include_router(pipelines_api.router)
    app.include_router(runs_api.router)
    mount_web(app)
    return app
