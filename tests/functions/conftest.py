"""Fixtures of the functions tests: a real S3 server, a store on it, step requests."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from minio import Minio
from moto.server import ThreadedMotoServer

from eventing.contract import ObjectRef, StepCall, StepRequest
from functions.catalog import Catalog
from functions.runtime import StepRuntime
from functions.store import MinioStore
from kpipe.settings import ImageSettings, ObjectStoreSettings

BUCKET = "uploads"


@pytest.fixture
def s3_endpoint(free_port: Callable[[], int]) -> Iterator[str]:
    """``host:port`` of a fresh moto S3 server on loopback, with one empty bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{port}"
    # moto keeps its buckets in process-wide state shared by every server it
    # starts: reset it so each test begins with nothing stored.
    reset = urllib.request.Request(f"http://{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=5):
        pass
    Minio(endpoint, "test", "test", secure=False, region="us-east-1").make_bucket(BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def store_settings(s3_endpoint: str) -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate(
        {
            "MINIO_ENDPOINT": s3_endpoint,
            "MINIO_ACCESS_KEY": "test",
            "MINIO_SECRET_KEY": "test",
            "MINIO_TIMEOUT_S": 5,
        }
    )


@pytest.fixture
def raw_s3(s3_endpoint: str) -> Minio:
    """A plain minio client, to check objects behind the store's back."""
    return Minio(s3_endpoint, "test", "test", secure=False, region="us-east-1")


@pytest.fixture
def store(store_settings: ObjectStoreSettings) -> Iterator[MinioStore]:
    with MinioStore(store_settings, attempts=1, backoff_s=0.01) as opened:
        yield opened


@pytest.fixture
def upload(raw_s3: Minio) -> Callable[[str, bytes], ObjectRef]:
    """Put bytes at a key of the test bucket; returns its ref."""

    def put(key: str, data: bytes) -> ObjectRef:
        raw_s3.put_object(BUCKET, key, io.BytesIO(data), len(data))
        return ObjectRef(BUCKET, key)

    return put


@pytest.fixture
def runtime(store: MinioStore) -> StepRuntime:
    return StepRuntime(store=store, catalog=Catalog(), images=ImageSettings())


@pytest.fixture
def make_request() -> Callable[..., StepRequest]:
    """Builds a step request on ``source`` running ``calls`` (function, params) in order."""

    def build(
        source: ObjectRef,
        *calls: tuple[str, dict[str, Any]],
        output_key: str = "runs/r1/out.jpg",
        final: bool = False,
    ) -> StepRequest:
        return StepRequest(
            source=source,
            inputs=(source,),
            calls=tuple(StepCall(f"s{i}", fn, params) for i, (fn, params) in enumerate(calls)),
            output=ObjectRef(BUCKET, output_key),
            final=final,
        )

    return build
