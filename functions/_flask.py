"""Adapts a functions-framework (Flask) request to the step SDK and back.

The only Flask-aware code of the parts: it hands the raw headers and body to
:func:`functions.step.handle_http` and turns the framework-free reply into a
Flask response. It never reads a CloudEvents header itself.
"""

from __future__ import annotations

import json
import logging

import flask

from functions.runtime import ProcessRuntime
from functions.step import HttpReply, handle_http, health_reply

logger = logging.getLogger(__name__)


def serve(request: flask.Request, function_name: str, runtime: ProcessRuntime) -> flask.Response:
    """Answer one HTTP request to the function ``function_name``.

    GET ``/metrics`` is Prometheus; any other GET (and HEAD) is the health
    check; POST is a broker delivery; anything else is 405. Every answer has
    a JSON, Prometheus or CloudEvent body.
    """
    if request.method in ("GET", "HEAD"):
        if request.path == "/metrics":
            body, content_type = runtime.telemetry.metrics()
            return flask.Response(body, status=200, content_type=content_type)
        return _response(health_reply(function_name))
    if request.method != "POST":
        return _response(_json(405, "method_not_allowed", f"{request.method} is not supported"))
    try:
        step_runtime = runtime.get()
    except Exception as exc:
        # A misconfigured deployment (a bad env var): not the event's fault, so
        # a 5xx lets the broker redeliver once the deployment is fixed.
        logger.exception("%s: cannot build the step runtime", function_name)
        return _response(_json(500, "misconfigured", f"{type(exc).__name__}: {exc}"))
    reply = handle_http(dict(request.headers), request.get_data(), function_name, step_runtime)
    return _response(reply)


def _response(reply: HttpReply) -> flask.Response:
    return flask.Response(reply.body, status=reply.status, headers=reply.headers)


def _json(status: int, code: str, message: str) -> HttpReply:
    body = json.dumps({"error": code, "message": message}).encode()
    return HttpReply(status, {"content-type": "application/json"}, body)
