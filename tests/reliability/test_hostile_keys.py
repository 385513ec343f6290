"""Hostile object keys through the whole local stack, and an object gone before its run."""

from __future__ import annotations

import time

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from eventing.contract import ObjectCreated
from eventing.http import to_http
from eventing.signing import Role
from kpipe.local.keys import ensure_keys
from tests.e2e.conftest import Stack
from tests.reliability._images import noise_jpeg
from tests.reliability._stack import broker_url, one_step

pytestmark = [pytest.mark.slow, pytest.mark.stack]

PIPELINE = "rel-keys"
KEYS = {
    "spaces": "keys/a photo with  spaces .jpg",
    "unicode": "keys/ünïcødé/写真 📷.jpg",
    "plus": "keys/a+b+c.jpg",
    "percent": "keys/100% sure %2F%41.jpg",
    "dots-inside": "keys/a/..../b/.../..c/d...jpg",
    "very-long": "keys/" + "long-segment/" * 68 + "x.jpg",
}


@pytest.fixture(scope="module")
def keys_pipeline(stack: Stack) -> Stack:
    stack.apply(
        one_step(
            PIPELINE, "keys/", {"id": "small", "function": "resize", "params": {"max_side": 16}}
        ),
    )
    stack.apply(
        one_step(
            "rel-missing", "missing/", {"id": "small", "function": "resize", "params": {"width": 8}}
        ),
    )
    return stack


def test_the_long_key_is_about_900_bytes() -> None:
    assert 880 <= len(KEYS["very-long"].encode()) <= 1024


@pytest.mark.parametrize("case", sorted(KEYS))
def test_hostile_keys_run_and_their_outputs_stay_under_the_pipeline(
    keys_pipeline: Stack, case: str
) -> None:
    stack = keys_pipeline
    key = KEYS[case]
    data = noise_jpeg(seed=len(key))
    stack.upload(key, data)
    run = stack.wait_run(PIPELINE, key)

    assert run["status"] == "succeeded", run
    assert run["source"] == {"bucket": "uploads", "key": key}
    [output] = run["outputs"]
    out_key: str = output["key"]
    assert out_key.startswith(f"{PIPELINE}/")
    assert ".." not in out_key
    assert "//" not in out_key
    assert len(out_key.encode()) <= 1024
    assert stack.read(output["bucket"], out_key)[:2] == b"\xff\xd8"  # a JPEG
    assert stack.read("uploads", key) == data


def test_a_key_with_dot_dot_segments_is_refused_and_starts_nothing(
    keys_pipeline: Stack,
) -> None:
    # Valid in S3, but the local store keeps objects as files: it refuses a
    # key with a ".." segment (400), so nothing is stored, notified or run.
    key = "keys/../../../etc/passwd.jpg"
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{keys_pipeline.s3_endpoint}",
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="uploads", Key=key, Body=noise_jpeg())
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    time.sleep(1)  # room for a (wrong) notification and run
    assert keys_pipeline.runs_of(PIPELINE, key) == []
    names = keys_pipeline.minio().list_objects("processed", recursive=True)
    assert all(o.object_name and ".." not in o.object_name for o in names)


def test_an_object_deleted_before_its_run_fails_it_as_missing(keys_pipeline: Stack) -> None:
    # The notification arrives, but the object is already gone: the adapter's
    # object.created (signed with its key, from KPIPE_HOME/keys) for a key never stored.
    ghost = ObjectCreated("uploads", "missing/ghost.jpg", 1234, "etag-ghost", "image/jpeg")
    adapter = ensure_keys(keys_pipeline.home)[Role.ADAPTER]
    headers, body = to_http(adapter.sign(ghost.to_event("/kpipe/s3/uploads")))
    accepted = httpx.post(
        broker_url(keys_pipeline, "/default/default"), headers=headers, content=body
    )
    assert accepted.status_code == 202
    run = keys_pipeline.wait_run("rel-missing", "missing/ghost.jpg")
    assert run["status"] == "failed"
    assert run["error"]["code"] == "object_missing"
    assert "uploads/missing/ghost.jpg" in run["error"]["message"]
    assert run["steps"][0]["attempt"] == 1
