"""The store that ``kpipe up`` starts, on its front's port, and the clients users bring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from minio import Minio

from eventing.notifications import parse_notification
from kpipe.local.s3.server import S3Server
from tests.eventing.conftest import Subscriber

NOTIFIED = "uploads"
QUIET = "processed"
KEYS = ("minioadmin", "minioadmin")
MIB = 1024 * 1024


@pytest.fixture
def webhook(subscriber: Callable[..., Subscriber]) -> Subscriber:
    return subscriber((200, b"", {}))


@pytest.fixture
def store(webhook: Subscriber) -> Iterator[S3Server]:
    """The local object store as ``kpipe up`` runs it: only ``uploads`` is notified."""
    with S3Server(
        0, buckets=(NOTIFIED, QUIET), webhooks=[webhook.url], notify_buckets=[NOTIFIED]
    ) as server:
        yield server


def boto(store: S3Server, config: Config | None = None) -> Any:
    """boto3 as a user sets it up: default checksums, path-style, the front's port."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://{store.endpoint}",
        aws_access_key_id=KEYS[0],
        aws_secret_access_key=KEYS[1],
        region_name="us-east-1",
        config=config,
    )


@pytest.fixture
def s3(store: S3Server) -> Any:
    return boto(store)


@pytest.fixture
def minio(store: S3Server) -> Minio:
    return Minio(store.endpoint, *KEYS, secure=False, region="us-east-1")


@pytest.fixture
def notified(store: S3Server, webhook: Subscriber, wait_for: Callable[..., None]) -> Any:
    """``notified()``: the keys notified so far, once the queue has drained."""

    def keys() -> list[str]:
        wait_for(lambda: store.notifier.stats()[webhook.url]["queued"] == 0)
        return [o.key for r in webhook.received for o in parse_notification(r.body)]

    return keys
