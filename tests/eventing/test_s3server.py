"""The local S3 server: minio and boto3 uploads produce MinIO-shaped notifications."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from minio import Minio

from eventing._notify import WebhookNotifier
from eventing.contract import ObjectCreated
from eventing.notifications import parse_notification
from eventing.s3server import S3Server
from eventing.sink import Backoff

pytestmark = pytest.mark.slow

TOKEN = "s3cret"
KEYS = ["plain.jpg", "dir/with space/ü ñ 😀.png", "a+b%2Fc.jpg", "odd..name/.hidden"]


@pytest.fixture
def bucket() -> str:
    # moto's state is per process: a fresh bucket per test keeps tests apart.
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


@pytest.mark.parametrize("key", [*KEYS, "../dot/./segments"])
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
    assert etag.endswith("-2")
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


def test_a_webhook_that_is_down_gets_the_notification_later(
    free_port: Callable[[], int],
    serve: Callable[[Any], str],
    subscriber: Callable[..., Any],
    bucket: str,
    wait_for: Callable[..., None],
) -> None:
    hook = subscriber((503, b"", {}), (503, b"", {}), (200, b"", {}))
    down = f"http://127.0.0.1:{free_port()}/"  # nothing listens here
    notifier = WebhookNotifier([hook.url, down], backoff=Backoff(0.01, 2, 0.05), max_age_s=0.5)
    with S3Server(free_port(), buckets=[bucket], notifier=notifier) as server:
        _boto(server).put_object(Bucket=bucket, Key="k", Body=b"1")
        wait_for(lambda: hook.count == 3)
        wait_for(lambda: notifier.stats()[down]["dropped"] == 1)
    assert [o.key for o in parse_notification(hook.received[2].body)] == ["k"]
    assert notifier.stats()[hook.url]["delivered"] == 1
