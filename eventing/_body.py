"""Reading a request body with a size limit (shared by the adapter and the broker)."""

from __future__ import annotations

from starlette.requests import Request

from eventing.errors import EventingError


class BodyTooLarge(EventingError):
    """A request body is over the server's limit; answered 413."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is over the limit of {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, without buffering more than ``limit`` bytes.

    Raises:
        BodyTooLarge: the declared or the received length is over ``limit``.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
