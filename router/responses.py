"""How the API answers errors: the JSON error body, with its status from the one table.

The table is :mod:`kpipe.core.http_status`.

Every 4xx and 5xx has the body ``{"error": {"code", "message", "field"}}``
(plus ``problems`` for an invalid spec); a refused bearer token also carries
its ``WWW-Authenticate`` challenge (RFC 6750).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kpipe.core.auth import BearerRefused
from kpipe.core.errors import KpipeError
from kpipe.core.http_status import error_body, status_for
from router.errors import RequestInvalid, SpecInvalid


def error_answer(exc: KpipeError) -> JSONResponse:
    """The answer to ``exc``: its status from the one table, its code, message and field."""
    if isinstance(exc, SpecInvalid):
        return JSONResponse(
            {
                **error_body(exc.code, exc.message, exc.problems[0].path),
                "problems": [p.to_data() for p in exc.problems],
            },
            status_code=status_for(exc),
        )
    response = JSONResponse(
        error_body(exc.code, exc.message, getattr(exc, "field", None)),
        status_code=status_for(exc),
    )
    if isinstance(exc, BearerRefused):
        response.headers["WWW-Authenticate"] = exc.challenge
    return response


def request_invalid(exc: RequestValidationError) -> RequestInvalid:
    """The first problem FastAPI found with a request's parameters, as a kpipe error."""
    errors = exc.errors()
    if not errors:
        return RequestInvalid("invalid request")
    first = errors[0]
    # loc is ("query" | "path" | "header" | "body", field, ...).
    field = ".".join(str(p) for p in first["loc"][1:]) or None
    return RequestInvalid(str(first["msg"]), field)


def _kpipe_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, KpipeError):  # registered for KpipeError only
        raise exc
    return error_answer(exc)


def _request_invalid(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    return error_answer(request_invalid(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the API raises with the JSON error body and its status."""
    app.add_exception_handler(KpipeError, _kpipe_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
