"""Serve one part's functions-framework target as an ASGI app, without functions-framework.

The parts are functions-framework HTTP functions (``async def name(request)``
taking a Starlette request, see :mod:`functions.main`), and
``functions-framework --target <part> --asgi`` serves them. Importing
``functions_framework`` imports Flask, Werkzeug, Jinja2 and Click first (its
``__init__`` is the Flask server), which a part that scales to zero pays on
every cold start. :func:`asgi_app` routes requests the way
``functions_framework.aio`` routes an HTTP function: every method on every
path goes to the function, except ``/robots.txt`` and ``/favicon.ico``
(404); an exception the function lets out is a 500, logged with its
traceback. It loads nothing but the target's module and Starlette's request
and response.

Example:
    >>> app = asgi_app("resize")  # doctest: +SKIP
    >>> uvicorn.run(app, port=8081, lifespan="off")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from kpipe.core.http_status import error_json

if TYPE_CHECKING:
    from functions._asgi import Target

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# The module holding the targets (functions-framework's FUNCTION_SOURCE, functions/main.py).
TARGETS = "functions.main"
# What functions_framework.aio answers 404 to instead of calling the function.
_NOT_FOUND = ("/robots.txt", "/favicon.ico")


class UnknownTarget(LookupError):
    """The targets' module has no function of that name."""

    def __init__(self, target: str, module: str) -> None:
        super().__init__(f"{module} has no function target {target!r}")
        self.target = target


def load_target(target: str, module: str = TARGETS) -> Target:
    """The function ``target`` of ``module`` (imports the module).

    Raises:
        UnknownTarget: The module defines no callable of that name.
    """
    found = getattr(importlib.import_module(module), target, None)
    if not callable(found):
        raise UnknownTarget(target, module)
    function: Target = found
    return function


def asgi_app(target: str | Target) -> App:
    """An ASGI app that answers every HTTP request with the target function.

    Args:
        target: A function name in :data:`TARGETS`, or the function itself.
    """
    function = load_target(target) if isinstance(target, str) else target

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # No lifespan or websocket: the server is started with lifespan="off".
            return
        response: Response
        if scope["method"] == "GET" and scope["path"] in _NOT_FOUND:
            response = Response(error_json("not_found", "Not Found"), 404, media_type=_JSON)
        else:
            try:
                response = await function(Request(scope, receive))
            except Exception:
                logger.exception("%s: the function raised", scope["path"])
                body = error_json("internal", "Internal Server Error")
                response = Response(body, 500, media_type=_JSON)
        await response(scope, receive, send)

    return app


_JSON = "application/json"
