"""How `kpipe up` wires its processes: what the router's /healthz checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from kpipe.local.config import StackConfig
from kpipe.local.stack import common_env, process_specs
from router.services import services_from_env


def loading_triton() -> Starlette:
    """A Triton that serves but is still loading its model, as PyTriton's is at start.

    PyTriton starts tritonserver with no model and then loads each one through
    the HTTP API, so ``/v2/health/ready`` answers 200 first, 400 while a model
    loads, and 200 again once it is loaded.
    """

    async def server_ready(_: Any) -> JSONResponse:
        return JSONResponse({})

    async def model_ready(_: Any) -> JSONResponse:
        return JSONResponse({"error": "model not ready"}, status_code=400)

    return Starlette(
        routes=[
            Route("/v2/health/ready", server_ready),
            Route("/v2/models/{name}/ready", model_ready),
        ]
    )


def test_the_router_checks_triton_as_the_supervisor_waits_for_it(
    tmp_path: Path, serve: Callable[[Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    triton_port = urlsplit(serve(loading_triton())).port
    assert triton_port is not None
    monkeypatch.setenv("KPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("KPIPE_TRITON_HTTP_PORT", str(triton_port))
    config = StackConfig()
    specs = {spec.name: spec for spec in process_specs(config)}
    for name, value in {**common_env(config), **specs["router"].env}.items():
        monkeypatch.setenv(name, value)

    services = services_from_env()
    try:
        health = services.health.check()
    finally:
        services.close()

    assert not health.ready
    assert health.components["triton"] == (f"not ready: {specs['triton'].ready_url} answered 400")
    # every process `kpipe up` waits for, the router checks too (the S3
    # server through its own object-store check)
    assert set(specs) - {"s3", "router"} <= set(health.components)


def test_only_the_router_listens_on_kpipe_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With KPIPE_HOST=0.0.0.0 (and a token) the API is reachable from other
    # machines; the object store with its well-known keys, Triton (no
    # authentication), the broker's ingress and the parts must not be.
    monkeypatch.setenv("KPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("KPIPE_HOST", "0.0.0.0")
    config = StackConfig()
    specs = {spec.name: spec for spec in process_specs(config)}

    def host_of(spec_name: str) -> str:
        argv = list(specs[spec_name].argv)
        return argv[argv.index("--host") + 1]

    assert host_of("router") == "0.0.0.0"
    for name in set(specs) - {"router"}:
        assert host_of(name) == "127.0.0.1", name
    assert specs["router"].env["KPIPE_BROKER_HOST"] == "127.0.0.1"
    # The router's own URL, as the broker's triggers name it, is reachable on loopback.
    assert config.router_url("/events") == f"http://127.0.0.1:{config.router_port}/events"
