"""CORS for the store's front: preflights answered, and the headers a browser needs to read S3.

Locally the default lets every origin in (``*``): a web app on another port
can do presigned uploads. ``--cors-origin`` (``KPIPE_S3_CORS_ORIGINS``) narrows
it to a list. A preflight from an origin not allowed is a 403 without CORS
headers, so the browser refuses the request.

Example:
    >>> CorsPolicy(["http://localhost:5173"]).allows("http://localhost:5173")
    True
"""

from __future__ import annotations

from collections.abc import Iterable

_METHODS = b"GET, PUT, POST, DELETE, HEAD"
# What a page may read of S3's answers (ETag for multipart uploads, above all).
_EXPOSED = (
    b"ETag, Content-Length, Content-Range, Content-Type, Last-Modified, x-amz-request-id, "
    b"x-amz-version-id, x-amz-delete-marker"
)
_MAX_AGE = b"3600"


class CorsPolicy:
    """Which origins may call the store from a browser.

    Args:
        origins: allowed origins; ``*`` (the default) allows every origin.
    """

    def __init__(self, origins: Iterable[str] = ("*",)) -> None:
        self._origins = frozenset(o.rstrip("/") for o in origins)

    def allows(self, origin: str) -> bool:
        return "*" in self._origins or origin.rstrip("/") in self._origins

    def headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """The CORS headers of an answer to a request from ``origin`` (none if not allowed)."""
        if not origin or not self.allows(origin):
            return []
        return [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", _EXPOSED),
            (b"vary", b"Origin"),
        ]

    def preflight(self, origin: str, requested_headers: str) -> list[tuple[bytes, bytes]] | None:
        """The headers of a preflight's 200, or None when ``origin`` may not call."""
        if not self.allows(origin):
            return None
        return [
            *self.headers(origin),
            (b"access-control-allow-methods", _METHODS),
            (b"access-control-allow-headers", requested_headers.encode() or b"*"),
            (b"access-control-max-age", _MAX_AGE),
        ]
