"""Adapts a functions-framework ASGI (Starlette) request to the delivery handler and back.

The only web-framework code of the parts: it reads the raw headers and a
bounded body, hands them to :func:`functions.delivery.handle_http` in a worker
thread (a step does blocking I/O and CPU work), and turns the framework-free
reply into a Starlette response. It never reads a CloudEvents header itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request
from starlette.responses import Response

from functions.delivery import HttpReply, handle_http, health_reply
from functions.errors import PartBusy
from functions.runtime import ProcessRuntime
from kpipe.core.http_body import BodyTooLarge, read_body
from kpipe.core.http_status import error_json, status_for

logger = logging.getLogger(__name__)

# A step request is a small JSON document; images travel through the object store.
MAX_EVENT_BYTES = 1 << 20
_MISCONFIGURED = "the part's configuration is invalid; its log says why"

Target = Callable[[Request], Awaitable[Response]]


class Admission:
    """At most ``limit`` steps at once, each on a worker thread of its own; beyond, 429.

    A delivery is never queued inside the part: a queued one would outlive
    the broker's timeout and be delivered again while the first copy runs,
    so the work would be done twice. The broker retries a 429 with backoff.
    One event loop calls :meth:`run`, so the count needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._pool = ThreadPoolExecutor(limit, thread_name_prefix="kpipe-step")

    async def run(self, step: Callable[[], HttpReply]) -> HttpReply:
        if self.running >= self.limit:
            busy = PartBusy(f"the part runs {self.limit} steps at once; retry later")
            reply = _json(status_for(busy), busy.code, busy.message)
            return HttpReply(reply.status, {**reply.headers, "retry-after": "1"}, reply.body)
        self.running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, step)
        finally:
            self.running -= 1


def target(function_name: str, runtime: ProcessRuntime) -> Target:
    """The functions-framework target of one part: ``async def <name>(request)``."""

    async def serve(request: Request) -> Response:
        return await answer(request, function_name, runtime)

    serve.__name__ = serve.__qualname__ = function_name
    return serve


async def answer(request: Request, function_name: str, runtime: ProcessRuntime) -> Response:
    """Answer one HTTP request to the function ``function_name``.

    GET ``/metrics`` is Prometheus; any other GET (and HEAD) is the health
    check; POST is a broker delivery; anything else is 405. Every answer has
    a JSON, Prometheus or CloudEvent body.
    """
    if request.method in ("GET", "HEAD"):
        if request.url.path == "/metrics":
            body, content_type = runtime.telemetry.metrics()
            return Response(body, status_code=200, media_type=content_type)
        try:
            runtime.get()  # no I/O: the configuration and the clients
        except Exception:
            # Not ready: Knative sends it no traffic until the deployment is fixed.
            logger.exception("%s: cannot build the step runtime", function_name)
            return _response(_json(503, "misconfigured", _MISCONFIGURED))
        return _response(health_reply(function_name))
    if request.method != "POST":
        return _response(_json(405, "method_not_allowed", f"{request.method} is not supported"))
    try:
        body = await read_body(request, MAX_EVENT_BYTES)
    except BodyTooLarge as exc:
        return _response(_json(status_for(exc), exc.code, exc.message))
    try:
        step_runtime = runtime.get()
    except Exception:
        # A misconfigured deployment (a bad env var, no key): not the event's
        # fault, so a 5xx lets the broker redeliver once it is fixed. The
        # details go to the log only: the caller is not authenticated yet.
        logger.exception("%s: cannot build the step runtime", function_name)
        return _response(_json(500, "misconfigured", _MISCONFIGURED))
    headers = dict(request.headers)
    reply = await runtime.admission().run(
        lambda: handle_http(headers, body, function_name, step_runtime)
    )
    return _response(reply)


def _response(reply: HttpReply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


def _json(status: int, code: str, message: str) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, error_json(code, message))
