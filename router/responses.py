"""How the API answers errors: one status table and the handlers that use it.

Every 4xx and 5xx has the body ``{"error": {"code", "message", "field"}}``
(plus ``problems`` for an invalid spec).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eventing.errors import DeliveryFailed, MalformedEvent
from functions.errors import ObjectMissing, StoreUnavailable
from functions.store import StoreRefused
from kpipe.errors import KpipeError
from router.conditions import BadCondition
from router.errors import (
    BackfillNotFound,
    BadQuery,
    Conflict,
    ObjectUnavailable,
    PipelineNotFound,
    RunNotFound,
    SpecInvalid,
    Unavailable,
)

# The one table that maps kpipe errors to HTTP statuses.
STATUS_OF: dict[type[KpipeError], int] = {
    SpecInvalid: 422,
    BadCondition: 422,
    PipelineNotFound: 404,
    RunNotFound: 404,
    BackfillNotFound: 404,
    ObjectUnavailable: 404,
    ObjectMissing: 404,
    BadQuery: 400,
    MalformedEvent: 400,
    Conflict: 409,
    Unavailable: 503,
    DeliveryFailed: 503,
    StoreUnavailable: 503,
    StoreRefused: 502,
}


class Unauthorized(Exception):
    """A mutating call without the API token; answered 401."""


class TooLarge(Exception):
    """A request body over the configured limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def status_for(exc: KpipeError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 500


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}}, status_code=status
    )


def _kpipe_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, KpipeError):  # registered for KpipeError only
        raise exc
    if isinstance(exc, SpecInvalid):
        return JSONResponse(
            {
                "error": {"code": exc.code, "message": exc.message, "field": exc.problems[0].path},
                "problems": [p.to_data() for p in exc.problems],
            },
            status_code=status_for(exc),
        )
    return error_response(status_for(exc), exc.code, exc.message, getattr(exc, "field", None))


def _request_invalid(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(p) for p in first["loc"][1:]) or None
    return error_response(422, "invalid_request", str(first["msg"]), field)


def _unauthorized(_: Request, __: Exception) -> JSONResponse:
    response = error_response(401, "unauthorized", "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _too_large(_: Request, exc: Exception) -> JSONResponse:
    limit = exc.limit if isinstance(exc, TooLarge) else 0
    return error_response(413, "too_large", f"request body is over {limit} bytes")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error the API raises with the JSON error body and its status."""
    app.add_exception_handler(KpipeError, _kpipe_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(TooLarge, _too_large)
