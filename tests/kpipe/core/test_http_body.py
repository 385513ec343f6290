"""The one bounded body reader: it stops reading at the limit."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from kpipe.core.http_body import BodyTooLarge, bounded_stream, read_body

LIMIT = 1000
CHUNK = b"x" * 100


class CountingReceive:
    """An ASGI receive that hands out ``chunks`` one by one and counts what it handed out."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.read = 0

    async def __call__(self) -> Message:
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}


def _request(receive: CountingReceive, content_length: int | None = None) -> Request:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT])
def test_a_body_up_to_the_limit_is_read_whole(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"y" * (size % 256)
    receive = CountingReceive(iter([body[i : i + 100] for i in range(0, size, 100)]))
    assert asyncio.run(read_body(_request(receive, size), LIMIT)) == body


def test_an_endless_body_is_read_only_past_the_limit() -> None:
    receive = CountingReceive(itertools.repeat(CHUNK))
    with pytest.raises(BodyTooLarge) as refused:
        asyncio.run(read_body(_request(receive), LIMIT))
    assert receive.read == LIMIT // len(CHUNK) + 1
    assert refused.value.limit == LIMIT


@pytest.mark.parametrize("declared", [LIMIT + 1, 10**12])
def test_a_body_declared_too_large_is_not_read_at_all(declared: int) -> None:
    receive = CountingReceive(itertools.repeat(CHUNK))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(_request(receive, declared), LIMIT))
    assert receive.read == 0


def test_a_body_longer_than_declared_is_still_cut_at_the_limit() -> None:
    receive = CountingReceive(itertools.repeat(CHUNK))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(_request(receive, 10), LIMIT))
    assert receive.read == LIMIT // len(CHUNK) + 1


def test_the_stream_yields_chunks_as_they_come() -> None:
    receive = CountingReceive(iter([b"ab", b"cd"]))

    async def first_chunk() -> bytes:
        stream = bounded_stream(_request(receive), LIMIT)
        try:
            return await anext(stream)
        finally:
            await stream.aclose()

    assert asyncio.run(first_chunk()) == b"ab"
    assert receive.read == 1
