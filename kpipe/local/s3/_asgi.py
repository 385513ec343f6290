"""The ASGI plumbing of the S3 front: its types, the request body as it streams, answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """``send`` with ``extra`` headers on the answer (CORS), replacing rclone's own."""
    if not extra:
        return send
    names = {k for k, _ in extra}

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message["headers"] if k.lower() not in names]
            kept = [(k, v) for k, v in kept if not k.lower().startswith(b"access-control-")]
            message = {**message, "headers": [*kept, *extra]}
        await send(message)

    return sending


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (never all in memory)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if status == 304:
        headers, body = [(k, v) for k, v in headers if k != b"content-length"], b""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
