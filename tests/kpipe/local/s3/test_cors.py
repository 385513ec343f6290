"""CORS: a web app on another origin can do presigned uploads and read the answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kpipe.local.s3.server import S3Server
from tests.kpipe.local.s3.conftest import NOTIFIED

pytestmark = pytest.mark.slow

ORIGIN = "http://localhost:5173"


def _preflight(endpoint: str, origin: str, method: str = "PUT") -> httpx.Response:
    return httpx.options(
        f"http://{endpoint}/{NOTIFIED}/photo.jpg",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,x-amz-meta-camera",
        },
    )


def test_a_preflight_is_answered_by_default(store: S3Server) -> None:
    answer = _preflight(store.endpoint, ORIGIN)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed
    assert "x-amz-meta-camera" in allowed
    assert "origin" in answer.headers["vary"].lower()


def test_a_presigned_put_from_an_origin_gets_cors_headers(store: S3Server, s3: Any) -> None:
    url = s3.generate_presigned_url("put_object", Params={"Bucket": NOTIFIED, "Key": "c.jpg"})
    answer = httpx.put(url, content=b"x", headers={"Origin": ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


def test_an_error_answer_gets_cors_headers_too(store: S3Server) -> None:
    answer = httpx.get(f"http://{store.endpoint}/{NOTIFIED}/x.jpg", headers={"Origin": ORIGIN})
    assert answer.status_code >= 400  # anonymous
    assert answer.headers["access-control-allow-origin"] == ORIGIN


@pytest.fixture
def strict(tmp_path: Any) -> Iterator[S3Server]:
    with S3Server(0, buckets=(NOTIFIED,), cors_origins=[ORIGIN]) as server:
        yield server


def test_configured_origins_only(strict: S3Server) -> None:
    assert _preflight(strict.endpoint, ORIGIN).headers["access-control-allow-origin"] == ORIGIN
    other = _preflight(strict.endpoint, "http://evil.example")
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers


def test_a_request_without_origin_gets_no_cors_headers(store: S3Server) -> None:
    answer = httpx.get(f"http://{store.endpoint}/{NOTIFIED}/x.jpg")
    assert "access-control-allow-origin" not in answer.headers
