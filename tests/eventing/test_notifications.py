"""Bucket notifications: the MinIO samples, AWS/Ceph records, and the reverse."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventing.contract import ObjectCreated
from eventing.errors import MalformedNotification
from eventing.notifications import Origin, notification_for, parse_notification

SAMPLES = {
    "put-unversioned-nested-key.json": ObjectCreated(
        bucket="images",
        key="uploads/2026/03/cat photo.jpg",
        size=245781,
        etag="9b2cf535f27731c974343645a3985328",
        content_type="image/jpeg",
        sequencer="189CAB0A3415CF40",
    ),
    "put-versioned-usermetadata.json": ObjectCreated(
        bucket="raw-images",
        key="batch-42/IMG_0001.png",
        size=1843207,
        etag="4e1d8a0c2b7f6e5d3c9a1b0f8e7d6c5b",
        content_type="image/png",
        version_id="0c3f9b4e-6a2d-4e8b-9f71-5d2a8c4e1b36",
        sequencer="189CACF64C3AFF80",
    ),
}


def _record(name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    """An AWS/Ceph-style record (no ``s3:`` prefix, quoted ETag)."""
    return {
        "eventName": name,
        "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1, **obj}},
    }


@pytest.mark.parametrize(("sample", "expected"), SAMPLES.items())
def test_parses_minio_samples(samples_dir: Path, sample: str, expected: ObjectCreated) -> None:
    assert parse_notification((samples_dir / sample).read_bytes()) == [expected]


@pytest.mark.parametrize("sample", SAMPLES)
def test_notification_for_rebuilds_the_sample(samples_dir: Path, sample: str) -> None:
    expected = json.loads((samples_dir / sample).read_text())
    record = expected["Records"][0]
    obj = record["s3"]["object"]
    metadata = {k: v for k, v in obj["userMetadata"].items() if k != "content-type"}
    built = notification_for(
        record["s3"]["bucket"]["name"],
        expected["Key"].partition("/")[2],
        obj["size"],
        obj["eTag"],
        obj["contentType"],
        record["eventName"],
        version_id=obj.get("versionId"),
        user_metadata=metadata,
        event_time=datetime.fromisoformat(record["eventTime"]),
        mod_time_ns=int(obj["sequencer"], 16),
        request_time_ns=int(record["responseElements"]["x-amz-request-id"], 16),
        origin=Origin(
            region=record["awsRegion"],
            principal=record["userIdentity"]["principalId"],
            source_host=record["source"]["host"],
            user_agent=record["source"]["userAgent"],
            endpoint=record["responseElements"]["x-minio-origin-endpoint"],
            deployment_id=record["responseElements"]["x-minio-deployment-id"],
            amz_id_2=record["responseElements"]["x-amz-id-2"],
        ),
    )
    assert built == expected


@pytest.mark.parametrize(
    "name",
    [
        "ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
    ],
)
def test_created_records_of_every_kind_become_objects(name: str) -> None:
    body = {"Records": [_record(name, eTag='"abc"', key="a+b%2Fc%2Bd")]}
    assert parse_notification(body) == [
        ObjectCreated("b", "a b/c+d", 1, "abc", "application/octet-stream")
    ]


@pytest.mark.parametrize(
    "name", ["s3:ObjectRemoved:Delete", "ObjectCreated:PutTagging", "s3:ObjectAccessed:Get"]
)
def test_other_records_are_skipped(name: str) -> None:
    assert parse_notification({"Records": [_record(name)]}) == []


def test_ceph_lowercase_etag_and_aws_test_event() -> None:
    assert parse_notification({"Records": [_record(etag="e1")]})[0].etag == "e1"
    assert parse_notification({"Event": "s3:TestEvent", "Service": "Amazon S3"}) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({"EventName": "s3:ObjectCreated:Put"}, "no Records"),
        ({"Records": ["x"]}, "record 0 is not a JSON object"),
        ({"Records": [{"eventName": 3}]}, "eventName is not a str"),
        ({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}, "no s3.bucket.name"),
        ({"Records": [_record(key="")]}, "empty bucket name or object key"),
        ({"Records": [_record(size=-1)]}, "negative object size"),
        ({"Records": [_record(size=True)]}, "s3.object.size is not a int"),
    ],
)
def test_malformed_notifications_say_why(body: Any, message: str) -> None:
    with pytest.raises(MalformedNotification, match=message):
        parse_notification(body)


def test_notification_for_escapes_like_minio() -> None:
    body = notification_for("uploads", "dir/a b+c.jpg", 3, '"e"', "image/jpeg")
    obj = body["Records"][0]["s3"]["object"]
    assert (obj["key"], obj["eTag"], body["Key"]) == (
        "dir%2Fa+b%2Bc.jpg",
        "e",
        "uploads/dir/a b+c.jpg",
    )
    assert body["Records"][0]["eventTime"].endswith("Z")
    assert len(body["Records"][0]["eventTime"]) == len("2026-03-14T09:26:53.593Z")


@given(
    key=st.one_of(
        st.text(min_size=1, max_size=60),
        st.lists(st.sampled_from(["a", " ", "+", "%", "/", "../", "%2F", "é", "😀"])).map(
            lambda parts: "k" + "".join(parts)
        ),
    ),
    size=st.integers(min_value=0, max_value=2**40),
)
def test_keys_round_trip(key: str, size: int) -> None:
    (obj,) = parse_notification(json.dumps(notification_for("b", key, size, "e")).encode())
    assert (obj.key, obj.size) == (key, size)
