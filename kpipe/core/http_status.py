"""The one table from kpipe's error codes to HTTP statuses, and the one error body.

Every kpipe server (the REST API, the broker's ingress, the adapter, the
parts) answers an error with :func:`status_for` and the body of
:func:`error_body`: ``{"error": {"code", "message", "field"}}``, with any
details of the error beside them.

Every kpipe error has a ``code`` (the machine-readable code its HTTP answers
carry), so the table is keyed by code: a code means the same status whoever
raises it, and this module imports nothing, so any package may use it without
an import cycle (a table keyed by class would have to import every package).
An error whose own code is not listed takes the status of the nearest base
class whose code is; anything else is a 500. Two error classes share a code
only when they mean the same answer. ``tests/kpipe/core/test_http_status.py``
checks that every code here belongs to a real error class.

Which errors a server answers with a status at all is the server's own
business: a part answers most step errors with a ``step.failed`` event and a
200, and only the event-less ones (malformed, unauthenticated, out of scope,
too large, or a store or Triton down for now) with :func:`status_for`.

Example:
    >>> from kpipe.core.http_body import BodyTooLarge
    >>> status_for(BodyTooLarge(1024))
    413
    >>> status_for(ValueError("not ours"))
    500
    >>> error_body("body_too_large", "the body is over 1024 bytes")
    {'error': {'code': 'body_too_large', 'message': 'the body is over 1024 bytes', 'field': None}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

STATUS_BY_CODE: Mapping[str, int] = MappingProxyType(
    {
        # The request is wrong as sent; sending it again will not help.
        "bad_query": 400,
        "malformed_authorization": 400,
        "malformed_event": 400,
        "malformed_notification": 400,
        # No valid bearer token (RFC 6750).
        "unauthorized": 401,
        "invalid_token": 401,
        # An event not signed by the role that may send it (eventing/signing.py).
        "unauthenticated": 401,
        # Authenticated, but not allowed: an OIDC subject not on the list, or a
        # signed step request that names objects outside its run.
        "forbidden": 403,
        "out_of_scope": 403,
        "backfill_not_found": 404,
        "object_missing": 404,
        "object_not_found": 404,
        "pipeline_not_found": 404,
        "run_not_found": 404,
        "rollout_not_found": 404,
        "conflict": 409,
        "body_too_large": 413,
        # A part running as many steps as it may: the broker retries with backoff.
        "part_busy": 429,
        "bad_condition": 422,
        "invalid_request": 422,
        "invalid_spec": 422,
        # A server kpipe depends on refused or is down: the client may retry later.
        "store_refused": 502,
        "broker_busy": 503,
        "delivery_failed": 503,
        "model_not_ready": 503,
        "oidc_unavailable": 503,
        "store_unavailable": 503,
        "unavailable": 503,
    }
)

INTERNAL = 500


def status_for(exc: BaseException) -> int:
    """The HTTP status to answer ``exc`` with: its code's, else its nearest base's, else 500."""
    for kind in type(exc).__mro__:
        code = vars(kind).get("code")
        if isinstance(code, str) and code in STATUS_BY_CODE:
            return STATUS_BY_CODE[code]
    return INTERNAL


def error_body(code: str, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    """The JSON body every kpipe server answers an error with.

    Args:
        code: the machine-readable code (the key of :data:`STATUS_BY_CODE`).
        message: what went wrong, for a person.
        field: the request field at fault, if one is.
        details: more fields of the error (a retry's age, say), beside these.
    """
    return {"error": {"code": code, "message": message, "field": field, **details}}


def error_json(code: str, message: str, field: str | None = None, **details: Any) -> bytes:
    """:func:`error_body`, serialised, for servers that write their answers' bytes."""
    return json.dumps(error_body(code, message, field, **details)).encode()
