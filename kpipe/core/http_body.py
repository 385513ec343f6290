"""Reading a request body with a size limit, for every kpipe server (router, adapter, broker).

A body declared (``Content-Length``) over the limit is refused before a byte
of it is read; any other body is read chunk by chunk and refused as soon as
the bytes received pass the limit, so a client cannot make a server buffer
more than ``limit`` bytes, whether it sends a length or not.

Example:
    >>> async def endpoint(request: Request) -> Response:  # doctest: +SKIP
    ...     body = await read_body(request, limit=1 << 20)  # BodyTooLarge: answer 413
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.requests import Request

from kpipe.core.errors import KpipeError


class BodyTooLarge(KpipeError):
    """A request body is over the server's limit; answered 413."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is over the limit of {limit} bytes")
        self.limit = limit


async def bounded_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body's chunks, never more than ``limit`` bytes of them.

    Raises:
        BodyTooLarge: the declared length is over ``limit`` (before any read),
            or the chunks received so far are.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    received = 0
    async with aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(limit)
            yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, without buffering more than ``limit`` bytes.

    Raises:
        BodyTooLarge: see :func:`bounded_stream`.
    """
    return b"".join([chunk async for chunk in bounded_stream(request, limit)])
