"""MinioStore against the local object store's rclone, a dead port and a failing server."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from minio import Minio

from eventing.contract import ObjectRef
from eventing.objectstore import (
    MinioStore,
    ObjectMissing,
    StoreRefused,
    StoreUnavailable,
    minio_client,
    split_endpoint,
    store_retry,
)
from kpipe.core.settings import ObjectStoreSettings
from kpipe.deploy.models import client_from_settings

BUCKET = "uploads"


def _settings(endpoint: str, timeout_s: float = 2.0) -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate(
        {
            "MINIO_ENDPOINT": endpoint,
            "MINIO_ACCESS_KEY": "test",
            "MINIO_SECRET_KEY": "test",
            "MINIO_TIMEOUT_S": timeout_s,
        }
    )


def test_put_then_get_round_trips(store: MinioStore, raw_s3: Minio) -> None:
    ref = ObjectRef(BUCKET, "a/b/c.png")
    store.put(ref, b"\x89PNG bytes", "image/png")
    assert store.get(ref) == b"\x89PNG bytes"
    assert raw_s3.stat_object(BUCKET, "a/b/c.png").content_type == "image/png"


def test_put_overwrites(store: MinioStore) -> None:
    ref = ObjectRef(BUCKET, "same.jpg")
    store.put(ref, b"first", "image/jpeg")
    store.put(ref, b"second", "image/jpeg")
    assert store.get(ref) == b"second"


@pytest.mark.parametrize(
    "ref",
    [ObjectRef(BUCKET, "nothing-here.jpg"), ObjectRef("no-such-bucket", "x.jpg")],
    ids=["key", "bucket"],
)
def test_get_missing_object(store: MinioStore, ref: ObjectRef) -> None:
    with pytest.raises(ObjectMissing) as caught:
        store.get(ref)
    assert caught.value.ref == ref


def test_copy_leaves_the_source_untouched(
    store: MinioStore, raw_s3: Minio, upload: Callable[[str, bytes], ObjectRef]
) -> None:
    source = upload("in/photo.jpg", b"original bytes")
    etag = raw_s3.stat_object(BUCKET, "in/photo.jpg").etag
    store.copy(source, ObjectRef(BUCKET, "out/photo.jpg"))
    assert store.get(ObjectRef(BUCKET, "out/photo.jpg")) == b"original bytes"
    assert store.get(source) == b"original bytes"
    assert raw_s3.stat_object(BUCKET, "in/photo.jpg").etag == etag


def test_copy_of_missing_object(store: MinioStore) -> None:
    with pytest.raises(ObjectMissing):
        store.copy(ObjectRef(BUCKET, "gone.jpg"), ObjectRef(BUCKET, "out.jpg"))


def test_copy_onto_itself_is_refused(store: MinioStore) -> None:
    ref = ObjectRef(BUCKET, "photo.jpg")
    with pytest.raises(ValueError, match="onto itself"):
        store.copy(ref, ref)


def test_endpoint_may_carry_a_scheme(
    s3_endpoint: str, upload: Callable[[str, bytes], ObjectRef]
) -> None:
    ref = upload("k.bin", b"data")
    with MinioStore(_settings(f"http://{s3_endpoint}")) as store:
        assert store.get(ref) == b"data"


def test_unreachable_store_fails_fast(free_port: Callable[[], int]) -> None:
    # Nothing listens on a freshly freed port: every attempt is refused at once.
    store = MinioStore(_settings(f"127.0.0.1:{free_port()}"), attempts=2, backoff_s=0.05)
    with store, pytest.raises(StoreUnavailable, match="unreachable"):
        store.get(ObjectRef(BUCKET, "photo.jpg"))


class _Scripted(BaseHTTPRequestHandler):
    """Answers every request with the server's status and S3 error body; counts them."""

    server: _ScriptedServer

    def _answer(self) -> None:
        self.server.requests += 1
        body = (
            f"<?xml version='1.0'?><Error><Code>{self.server.code}</Code>"
            f"<Message>scripted</Message></Error>"
        ).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ScriptedServer(ThreadingHTTPServer):
    requests = 0
    status = 500
    code = "InternalError"


@pytest.fixture
def scripted(free_port: Callable[[], int]) -> Iterator[_ScriptedServer]:
    server = _ScriptedServer(("127.0.0.1", free_port()), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_server_errors_are_retried_then_unavailable(scripted: _ScriptedServer) -> None:
    scripted.status, scripted.code = 503, "SlowDown"
    endpoint = f"127.0.0.1:{scripted.server_address[1]}"
    store = MinioStore(_settings(endpoint), attempts=2, backoff_s=0.01)
    with store, pytest.raises(StoreUnavailable, match="SlowDown"):
        store.get(ObjectRef(BUCKET, "photo.jpg"))
    assert scripted.requests == 3  # the first try and two retries


def test_permanent_errors_are_not_retried(scripted: _ScriptedServer) -> None:
    scripted.status, scripted.code = 403, "AccessDenied"
    endpoint = f"127.0.0.1:{scripted.server_address[1]}"
    store = MinioStore(_settings(endpoint), attempts=2, backoff_s=0.01)
    with store, pytest.raises(StoreRefused, match="AccessDenied"):
        store.put(ObjectRef(BUCKET, "photo.jpg"), b"x", "image/jpeg")
    assert scripted.requests == 1


def test_retry_policy_is_bounded() -> None:
    retry = store_retry(attempts=3, backoff_s=0.25)
    assert retry.total == 3
    assert set(retry.status_forcelist or ()) == {500, 502, 503, 504}
    # A server's Retry-After must not stretch a step beyond the backoff.
    assert retry.respect_retry_after_header is False
    assert "POST" not in (retry.allowed_methods or ())


@pytest.mark.parametrize("build", [minio_client, client_from_settings], ids=["parts", "models"])
@pytest.mark.parametrize("scheme", ["", "http://"], ids=["host-port", "http-url"])
def test_every_s3_client_takes_the_endpoint_the_parts_take(
    s3_endpoint: str,
    raw_s3: Minio,
    build: Callable[[ObjectStoreSettings], Minio],
    scheme: str,
) -> None:
    client = build(_settings(f"{scheme}{s3_endpoint}"))
    client.put_object(BUCKET, "k.bin", io.BytesIO(b"data"), 4)
    assert raw_s3.get_object(BUCKET, "k.bin").read() == b"data"


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("s3.example:9000", False, ("s3.example:9000", False)),
        ("s3.example:9000", True, ("s3.example:9000", True)),
        ("http://s3.example:9000", True, ("s3.example:9000", False)),
        ("https://s3.example:9000/", False, ("s3.example:9000", True)),
    ],
)
def test_the_scheme_decides_tls_over_minio_secure(
    endpoint: str, secure: bool, expected: tuple[str, bool]
) -> None:
    settings = ObjectStoreSettings.model_validate(
        {"MINIO_ENDPOINT": endpoint, "MINIO_SECURE": secure}
    )
    assert split_endpoint(settings) == expected


def test_an_endpoint_without_a_host_is_refused() -> None:
    settings = ObjectStoreSettings.model_validate({"MINIO_ENDPOINT": "http://"})
    with pytest.raises(ValueError, match="has no host"):
        minio_client(settings)
