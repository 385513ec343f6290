"""The local object store: real S3 clients, MinIO-shaped notifications, data on disk."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from minio import Minio
from minio.error import InvalidResponseError, S3Error

from eventing.contract import ObjectCreated
from eventing.notifications import parse_notification
from kpipe.local.s3._notify import NotificationQueue
from kpipe.local.s3.server import S3Server

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
KEYS = ["plain.jpg", "dir/with space/ü ñ 😀.png", "a+b%2Fc.jpg", "odd..name/.hidden"]


@pytest.fixture
def bucket() -> str:
    return f"uploads-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def webhook(subscriber: Callable[..., Any]) -> Any:
    return subscriber((200, b"", {}))


@pytest.fixture
def s3(free_port: Callable[[], int], webhook: Any, bucket: str) -> Iterator[S3Server]:
    with S3Server(free_port(), buckets=[bucket], webhooks=[webhook.url], token=TOKEN) as server:
        yield server


def _boto(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{server.endpoint}",
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )


def _notified(webhook: Any, wait_for: Callable[..., None], count: int = 1) -> list[ObjectCreated]:
    wait_for(lambda: webhook.count >= count)
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in webhook.received)
    return [o for r in webhook.received for o in parse_notification(r.body)]


@pytest.mark.parametrize("key", KEYS)
def test_minio_put_is_notified(
    s3: S3Server, webhook: Any, bucket: str, key: str, wait_for: Callable[..., None]
) -> None:
    client = Minio(s3.endpoint, "minioadmin", "minioadmin", secure=False)
    result = client.put_object(bucket, key, io.BytesIO(b"x" * 10), 10, content_type="image/jpeg")
    (obj,) = _notified(webhook, wait_for)
    assert obj == ObjectCreated(bucket, key, 10, result.etag, "image/jpeg", sequencer=obj.sequencer)
    assert webhook.received[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("key", KEYS)
def test_boto3_put_is_notified(
    s3: S3Server, webhook: Any, bucket: str, key: str, wait_for: Callable[..., None]
) -> None:
    etag = _boto(s3).put_object(Bucket=bucket, Key=key, Body=b"hello")["ETag"].strip('"')
    (obj,) = _notified(webhook, wait_for)
    assert (obj.bucket, obj.key, obj.size, obj.etag) == (bucket, key, 5, etag)


def test_boto3_multipart_upload_is_notified_once(
    s3: S3Server, webhook: Any, bucket: str, wait_for: Callable[..., None]
) -> None:
    client = _boto(s3)
    mib = 1024 * 1024
    config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib)
    client.upload_fileobj(io.BytesIO(b"y" * (6 * mib)), bucket, "big.bin", Config=config)
    etag = client.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"')
    (obj,) = _notified(webhook, wait_for)
    assert (obj.size, obj.etag) == (6 * mib, etag)
    body = webhook.received[0].body.decode()
    assert "s3:ObjectCreated:CompleteMultipartUpload" in body


def test_copy_is_notified(
    s3: S3Server, webhook: Any, bucket: str, wait_for: Callable[..., None]
) -> None:
    client = _boto(s3)
    client.put_object(Bucket=bucket, Key="src", Body=b"abc")
    client.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    objects = _notified(webhook, wait_for, count=2)
    assert [o.key for o in objects] == ["src", "dst"]
    assert "s3:ObjectCreated:Copy" in webhook.received[1].body.decode()


def test_health_endpoint(s3: S3Server) -> None:
    assert httpx.get(f"http://{s3.endpoint}/minio/health/live").status_code == 200


def test_a_key_with_dot_segments_is_refused_and_not_notified(
    s3: S3Server, webhook: Any, bucket: str
) -> None:
    # As MinIO does: such a key would alias another file, or one outside the bucket.
    with pytest.raises(ClientError) as refused:
        _boto(s3).put_object(Bucket=bucket, Key="../dot/./segments", Body=b"x")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert s3.notifier.stats()[webhook.url] == {
        "delivered": 0,
        "dropped": 0,
        "refused": 0,
        "queued": 0,
    }


def test_a_webhook_that_is_down_gets_the_notification_later(
    tmp_path: Path,
    free_port: Callable[[], int],
    subscriber: Callable[..., Any],
    bucket: str,
    wait_for: Callable[..., None],
) -> None:
    hook = subscriber((503, b"", {}), (503, b"", {}), (200, b"", {}))
    with S3Server(0, buckets=[bucket], webhooks=[hook.url], data_dir=tmp_path) as server:
        _boto(server).put_object(Bucket=bucket, Key="k", Body=b"1")
        wait_for(lambda: hook.count == 3)
        wait_for(lambda: server.notifier.stats()[hook.url]["delivered"] == 1)
    assert [o.key for o in parse_notification(hook.received[2].body)] == ["k"]


def test_a_notification_refused_for_good_does_not_hold_up_the_next_ones(
    tmp_path: Path,
    subscriber: Callable[..., Any],
    bucket: str,
    wait_for: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The adapter refuses the first notification (400: it will never take it),
    # is busy for the second (429: retried), then takes it.
    refusal = b'{"error": {"code": "malformed_notification", "message": "no"}}'
    hook = subscriber((400, refusal, {}), (429, b"", {}), (200, b"", {}))
    with S3Server(0, buckets=[bucket], webhooks=[hook.url], data_dir=tmp_path) as server:
        client = _boto(server)
        client.put_object(Bucket=bucket, Key="poison", Body=b"1")
        wait_for(lambda: server.notifier.stats()[hook.url]["refused"] == 1)
        client.put_object(Bucket=bucket, Key="next", Body=b"2")
        wait_for(lambda: server.notifier.stats()[hook.url]["delivered"] == 1, timeout_s=5)
        assert server.notifier.stats()[hook.url]["queued"] == 0
    keys = [o.key for r in hook.received for o in parse_notification(r.body)]
    assert keys == ["poison", "next", "next"]  # the 400 once, the 429 retried
    queue = NotificationQueue(tmp_path / "notifications.db")
    try:
        [(_, status, answer)] = queue.dead(hook.url)
    finally:
        queue.close()
    assert (status, answer) == (400, refusal.decode())
    assert "refused for good (HTTP 400" in caplog.text


def test_objects_and_pending_notifications_survive_a_restart(
    tmp_path: Path,
    free_port: Callable[[], int],
    subscriber: Callable[..., Any],
    bucket: str,
    wait_for: Callable[..., None],
) -> None:
    port = free_port()
    down = f"http://127.0.0.1:{port}/"  # nothing listens here yet
    with S3Server(0, buckets=[bucket], webhooks=[down], data_dir=tmp_path) as first:
        etag = _boto(first).put_object(Bucket=bucket, Key="a/photo.jpg", Body=b"pixels")["ETag"]
        assert first.notifier.stats()[down]["queued"] == 1
    # The acknowledged upload is a file on disk, and its notification is queued there.
    assert (tmp_path / "objects" / bucket / "a" / "photo.jpg").read_bytes() == b"pixels"
    hook = subscriber((200, b"", {}), port=port)
    assert hook.url == down
    with S3Server(0, buckets=[bucket], webhooks=[hook.url], data_dir=tmp_path) as second:
        wait_for(lambda: hook.count == 1)
        body = _boto(second).get_object(Bucket=bucket, Key="a/photo.jpg")["Body"].read()
    assert body == b"pixels"
    (obj,) = parse_notification(hook.received[0].body)
    assert (obj.bucket, obj.key, obj.etag) == (bucket, "a/photo.jpg", etag.strip('"'))


def test_only_notified_buckets_are_notified(
    tmp_path: Path, subscriber: Callable[..., Any], wait_for: Callable[..., None]
) -> None:
    hook = subscriber((200, b"", {}))
    with S3Server(
        0,
        buckets=["uploads", "processed"],
        webhooks=[hook.url],
        notify_buckets=["uploads"],
        data_dir=tmp_path,
    ) as server:
        client = _boto(server)
        client.put_object(Bucket="processed", Key="out.jpg", Body=b"o")
        client.put_object(Bucket="uploads", Key="in.jpg", Body=b"i")
        wait_for(lambda: hook.count == 1)
        assert server.notifier.stats()[hook.url]["queued"] == 0
    assert [o.key for o in parse_notification(hook.received[0].body)] == ["in.jpg"]


def test_the_backend_endpoint_serves_the_same_objects_without_notifying(
    tmp_path: Path, subscriber: Callable[..., Any]
) -> None:
    hook = subscriber((200, b"", {}))
    with S3Server(0, webhooks=[hook.url], data_dir=tmp_path) as server:
        direct = Minio(server.backend_endpoint, "minioadmin", "minioadmin", secure=False)
        direct.put_object("processed", "x.png", io.BytesIO(b"png"), 3)
        front = Minio(server.endpoint, "minioadmin", "minioadmin", secure=False)
        response = front.get_object("processed", "x.png")
        try:
            assert response.read() == b"png"
        finally:
            response.close()
            response.release_conn()
        assert server.notifier.stats()[hook.url]["queued"] == 0
    assert hook.count == 0


def test_wrong_credentials_are_refused(s3: S3Server, webhook: Any, bucket: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{s3.endpoint}",
        aws_access_key_id="minioadmin",
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert s3.notifier.stats()[webhook.url]["queued"] == 0


def test_the_secret_keys_are_not_on_rclones_command_line(tmp_path: Path) -> None:
    # Every user of the machine can read a command line (ps); the keys go in
    # rclone's environment, and only the configured keys get in.
    with S3Server(0, buckets=("b",), data_dir=tmp_path, credentials=("ak-test", "sk-test")) as s3:
        argv = " ".join(s3.backend.argv())
        assert "sk-test" not in argv
        for host in (s3.endpoint, s3.backend_endpoint):
            assert [b.name for b in Minio(host, "ak-test", "sk-test", secure=False).list_buckets()]
            with pytest.raises((S3Error, InvalidResponseError)):
                Minio(host, "ak-test", "wrong", secure=False).list_buckets()
