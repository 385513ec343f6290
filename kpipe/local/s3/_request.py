"""One S3 request as the front sees it: bucket, key, sub-resources, headers as signed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from kpipe.local.s3._errors import S3Refusal
from kpipe.local.s3._sigv4 import Request, query_pairs

# Hop-by-hop headers (RFC 9110 7.6.1) and Expect, which the front answers itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
# PUTs on these sub-resources change an object's metadata or upload a part.
_NOT_CREATING = frozenset(
    {"partNumber", "uploadId", "tagging", "acl", "retention", "legal-hold", "restore"}
)
# Conditions on the source of a copy.
COPY_CONDITIONS = (
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
)


@dataclass(frozen=True)
class Creation:
    """What a creating request creates: its event name, bucket and key."""

    event_name: str
    bucket: str
    key: str


def decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The end-to-end headers, lower-case, as UTF-8 text (re-encoded, the same bytes go on).

    Raises:
        S3Refusal: a header is not UTF-8 (its bytes could not go on as they were signed).
    """
    headers: dict[str, str] = {}
    for name, value in raw:
        try:
            text_name, text = name.decode("ascii").lower(), value.decode("utf-8")
        except UnicodeDecodeError:
            raise S3Refusal(400, "InvalidArgument", "header values must be UTF-8") from None
        if text_name in HOP_BY_HOP:
            continue
        headers[text_name] = f"{headers[text_name]},{text}" if text_name in headers else text
    return headers


@dataclass(frozen=True)
class S3Call:
    """An S3 request: method, the path and query as sent, the headers, and what they name."""

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, str]

    @classmethod
    def from_scope(cls, scope: dict[str, Any] | Any, headers: dict[str, str]) -> S3Call:
        return cls(
            scope["method"],
            scope["raw_path"].decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            headers,
        )

    @cached_property
    def _path(self) -> tuple[str, str]:
        # ASGI gives the percent-decoded path; raw_path is what was signed.
        path = unquote(self.raw_path, encoding="utf-8", errors="replace")
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    @property
    def bucket(self) -> str:
        return self._path[0]

    @property
    def key(self) -> str:
        return self._path[1]

    @cached_property
    def params(self) -> dict[str, str]:
        return dict(query_pairs(self.query_string))

    @property
    def signed(self) -> Request:
        return Request(self.method, self.raw_path, self.query_string, self.headers)

    @property
    def signed_v2(self) -> bool:
        """Signed with V2 (rclone checks V4 only, so the front checks and re-signs these)."""
        return "AWSAccessKeyId" in self.params or self.headers.get("authorization", "").startswith(
            "AWS "
        )

    @property
    def copy_source(self) -> tuple[str, str] | None:
        """``(bucket, key)`` of ``x-amz-copy-source``, or None."""
        source = self.headers.get("x-amz-copy-source")
        if source is None:
            return None
        path = unquote(source.partition("?")[0]).lstrip("/")
        bucket, _, key = path.partition("/")
        if not bucket or not key:
            raise S3Refusal(400, "InvalidArgument", "x-amz-copy-source must name bucket/key")
        return bucket, key

    @property
    def is_upload_part_copy(self) -> bool:
        return (
            self.method == "PUT"
            and "uploadId" in self.params
            and "partNumber" in self.params
            and "x-amz-copy-source" in self.headers
        )

    @property
    def is_post_object(self) -> bool:
        return (
            self.method == "POST"
            and bool(self.bucket)
            and not self.key
            and not self.query_string
            and self.headers.get("content-type", "").startswith("multipart/form-data")
        )

    @property
    def has_body(self) -> bool:
        return self.headers.get("content-length", "0") != "0" or "aws-chunked" in self.headers.get(
            "content-encoding", ""
        )

    def creation(self) -> Creation | None:
        """The object this request would create, or None for any other request."""
        if not self.bucket or not self.key:
            return None
        if self.method == "PUT" and not _NOT_CREATING & self.params.keys():
            copying = "x-amz-copy-source" in self.headers
            event = "s3:ObjectCreated:Copy" if copying else "s3:ObjectCreated:Put"
            return Creation(event, self.bucket, self.key)
        if self.method == "POST" and "uploadId" in self.params:
            return Creation("s3:ObjectCreated:CompleteMultipartUpload", self.bucket, self.key)
        return None


_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def copy_range(header: str | None, size: int) -> tuple[int, int]:
    """``(first, last)`` byte of ``x-amz-copy-source-range`` (the whole object without one)."""
    if header is None:
        return 0, size - 1
    match = _COPY_RANGE.fullmatch(header)
    if match is None:
        raise S3Refusal(400, "InvalidArgument", "x-amz-copy-source-range must be bytes=first-last")
    first, last = int(match[1]), int(match[2])
    if first > last or last >= size:
        raise S3Refusal(416, "InvalidRange", "The requested range is not satisfiable")
    return first, last
