"""Fixtures of the functions tests: a real S3 server, a store on it, step requests."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from eventing.contract import ObjectRef, PipelineContext, StepCall, StepRequest, run_prefix
from eventing.s3server import S3Server
from eventing.signing import Role, SigningKey, TrustedKeys
from functions.catalog import Catalog
from functions.runtime import StepRuntime
from functions.store import MinioStore
from kpipe.settings import ImageSettings, ObjectStoreSettings

BUCKET = "uploads"
# The run every request of these tests belongs to; outputs go under its prefix.
PIPELINE, RUN = "p", "r1"
CONTEXT = PipelineContext(PIPELINE, 1, RUN, "s0", "resize")
# The router's key signs requests, the parts' key signs answers.
ROUTER_KEY = SigningKey.generate("router-test")
PARTS_KEY = SigningKey.generate("parts-test")
TRUSTED = TrustedKeys.of({Role.ROUTER: [ROUTER_KEY], Role.PARTS: [PARTS_KEY]})


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """``host:port`` of the local object store's rclone, where the parts read and write.

    A fresh one per test (its data in the test's folder), with one empty bucket.
    """
    with S3Server(
        0, buckets=(BUCKET,), data_dir=tmp_path / "s3", credentials=("test", "test")
    ) as s3:
        yield s3.backend_endpoint


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
    return StepRuntime(
        store=store, catalog=Catalog(), images=ImageSettings(), trusted=TRUSTED, signer=PARTS_KEY
    )


@pytest.fixture
def make_request() -> Callable[..., StepRequest]:
    """Builds a step request on ``source`` running ``calls`` (function, params) in order."""

    def build(
        source: ObjectRef,
        *calls: tuple[str, dict[str, Any]],
        output_key: str = f"{run_prefix(PIPELINE, RUN)}out.jpg",
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
