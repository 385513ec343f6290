"""S3 bucket notifications (MinIO, Ceph RGW, AWS) to and from :class:`ObjectCreated`.

Pure conversions, no I/O. :func:`parse_notification` reads the S3 event-record
shape that MinIO's webhook target, Ceph RGW and AWS share; the MinIO envelope
(``EventName``, ``Key``, ``Records``) is the same record set with two extra
fields. :func:`notification_for` builds the payload MinIO would POST, for the
local S3 server.

Example:
    >>> body = notification_for("uploads", "a b.jpg", 3, "abc", "image/jpeg")
    >>> body["Records"][0]["s3"]["object"]["key"]
    'a+b.jpg'
    >>> [o.key for o in parse_notification(body)]
    ['a b.jpg']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from eventing.contract import ObjectCreated
from eventing.errors import MalformedNotification

# Only these create new object content. MinIO also sends ObjectCreated:PutTagging,
# :PutRetention, :PutLegalHold and :DeleteTagging, which change metadata only:
# running a pipeline again for them would be wrong.
CREATED_EVENTS = frozenset(
    {
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
    }
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _field(obj: Any, path: str, kind: type, index: int) -> Any:
    """Walk a dotted ``path`` in a record; MalformedNotification if absent or mistyped."""
    value = obj
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise MalformedNotification(f"record {index} has no {path}")
        value = value[part]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedNotification(f"record {index} field {path} is not a {kind.__name__}")
    return value


def _record_to_object(record: Any, index: int) -> ObjectCreated | None:
    """The object one record created, or None for a record of another kind."""
    if not isinstance(record, Mapping):
        raise MalformedNotification(f"record {index} is not a JSON object")
    name = _field(record, "eventName", str, index)
    # MinIO prefixes "s3:", AWS and Ceph do not.
    if name.removeprefix("s3:") not in CREATED_EVENTS:
        return None
    bucket = _field(record, "s3.bucket.name", str, index)
    raw_key = _field(record, "s3.object.key", str, index)
    if not bucket or not raw_key:
        raise MalformedNotification(f"record {index} has an empty bucket name or object key")
    obj = record["s3"]["object"]
    size = _field(record, "s3.object.size", int, index)
    if size < 0:
        raise MalformedNotification(f"record {index} has a negative object size {size}")
    # MinIO and AWS spell it eTag, Ceph RGW etag.
    etag = obj.get("eTag", obj.get("etag", ""))
    if not isinstance(etag, str):
        raise MalformedNotification(f"record {index} field s3.object.eTag is not a str")
    metadata = obj.get("userMetadata")
    content_type = obj.get("contentType") or (
        metadata.get("content-type") if isinstance(metadata, Mapping) else None
    )
    version_id = obj.get("versionId") or None
    sequencer = obj.get("sequencer") or None
    return ObjectCreated(
        bucket=bucket,
        key=unquote_plus(raw_key),
        size=size,
        etag=etag.strip('"'),
        content_type=str(content_type or DEFAULT_CONTENT_TYPE),
        version_id=str(version_id) if version_id is not None else None,
        sequencer=str(sequencer) if sequencer is not None else None,
    )


def parse_notification(body: bytes | str | Mapping[str, Any]) -> list[ObjectCreated]:
    """The objects a bucket notification reports as created.

    Args:
        body: the JSON body (bytes or text) or its decoded object.

    Returns:
        One ObjectCreated per ``ObjectCreated:{Put,Post,Copy,CompleteMultipartUpload}``
        record, in order; other records (deletes, tagging...) are skipped.

    Raises:
        MalformedNotification: the body is not JSON, has no ``Records`` list,
            or a created-object record lacks its bucket, key or size.
    """
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            raise MalformedNotification("notification body is not JSON") from None
    if not isinstance(body, Mapping):
        raise MalformedNotification("notification body is not a JSON object")
    if body.get("Event") == "s3:TestEvent":
        return []  # AWS sends this once when a notification is configured.
    records = body.get("Records")
    if not isinstance(records, list):
        raise MalformedNotification("notification has no Records list")
    created = (_record_to_object(r, i) for i, r in enumerate(records))
    return [o for o in created if o is not None]


@dataclass(frozen=True)
class Origin:
    """Who and where a notification comes from (the fields MinIO fills per server)."""

    region: str = ""
    principal: str = "minioadmin"
    source_host: str = "127.0.0.1"
    user_agent: str = ""
    endpoint: str = "http://127.0.0.1:9000"
    deployment_id: str = "00000000-0000-0000-0000-000000000000"
    # MinIO sends the hex SHA-256 of its node name.
    amz_id_2: str = field(default_factory=lambda: hashlib.sha256(b"kpipe-s3").hexdigest())


def _event_time(moment: datetime) -> str:
    """MinIO's ``2006-01-02T15:04:05.000Z``: UTC, milliseconds, Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def notification_for(
    bucket: str,
    key: str,
    size: int,
    etag: str,
    content_type: str = DEFAULT_CONTENT_TYPE,
    event_name: str = "s3:ObjectCreated:Put",
    *,
    version_id: str | None = None,
    user_metadata: Mapping[str, str] | None = None,
    event_time: datetime | None = None,
    mod_time_ns: int | None = None,
    request_time_ns: int | None = None,
    origin: Origin | None = None,
) -> dict[str, Any]:
    """The JSON body MinIO's webhook target posts for one object event.

    Args:
        bucket: bucket name.
        key: object key, unescaped (it is escaped with ``quote_plus`` like MinIO).
        size: object size in bytes.
        etag: the ETag, with or without quotes.
        content_type: the object's content type.
        event_name: e.g. ``s3:ObjectCreated:Put`` or ``...:CompleteMultipartUpload``.
        version_id: set for versioned buckets only.
        user_metadata: ``X-Amz-Meta-*`` headers, canonical case.
        event_time: when the event happened (default now).
        mod_time_ns: the object's modification time; the sequencer is its %X.
        request_time_ns: the request's time; ``x-amz-request-id`` is its %X.
        origin: server identity fields.

    Returns:
        The envelope ``{"EventName", "Key", "Records": [record]}``.
    """
    origin = origin or Origin()
    now = event_time or datetime.now(UTC)
    now_ns = int(now.timestamp() * 1_000_000) * 1000
    obj: dict[str, Any] = {
        "key": quote_plus(key),
        "size": size,
        "eTag": etag.strip('"'),
        "contentType": content_type,
        "userMetadata": {"content-type": content_type, **(user_metadata or {})},
    }
    if version_id:
        obj["versionId"] = version_id
    obj["sequencer"] = f"{mod_time_ns if mod_time_ns is not None else now_ns:X}"
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": origin.region,
        "eventTime": _event_time(now),
        "eventName": event_name,
        "userIdentity": {"principalId": origin.principal},
        "requestParameters": {
            "principalId": origin.principal,
            "region": origin.region,
            "sourceIPAddress": origin.source_host,
        },
        "responseElements": {
            "x-amz-id-2": origin.amz_id_2,
            "x-amz-request-id": f"{request_time_ns if request_time_ns is not None else now_ns:X}",
            "x-minio-deployment-id": origin.deployment_id,
            "x-minio-origin-endpoint": origin.endpoint,
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": origin.principal},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        "source": {"host": origin.source_host, "port": "", "userAgent": origin.user_agent},
    }
    return {"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}
