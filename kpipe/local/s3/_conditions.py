"""Conditional requests (RFC 9110 13, as S3 applies them) against an object's ETag and date."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from kpipe.local.s3._errors import S3Refusal

_PRECONDITION_FAILED = S3Refusal(
    412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
)


@dataclass(frozen=True)
class Current:
    """What the conditions are checked against: the object's ETag and date, or None if absent."""

    etag: str
    modified: datetime


def _etags(value: str) -> set[str]:
    return {t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()}


def _date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # an unparsable date is ignored (RFC 9110 13.1.3)


def check_write(headers: Mapping[str, str], current: Current | None) -> None:
    """A PUT's ``If-None-Match: *`` and ``If-Match`` against the object there now.

    Raises:
        S3Refusal: 412 when a condition fails; 404 for ``If-Match`` on a missing key.
    """
    if "if-none-match" in headers and current is not None:
        tags = _etags(headers["if-none-match"])
        if "*" in tags or current.etag.strip('"') in tags:
            raise _PRECONDITION_FAILED
    if "if-match" in headers:
        if current is None:
            raise S3Refusal(404, "NoSuchKey", "The specified key does not exist.")
        tags = _etags(headers["if-match"])
        if "*" not in tags and current.etag.strip('"') not in tags:
            raise _PRECONDITION_FAILED


def check_copy_source(headers: Mapping[str, str], source: Current) -> None:
    """A copy's ``x-amz-copy-source-if-*`` conditions against its source.

    Raises:
        S3Refusal: 412 when one fails.
    """
    _check_read(headers, source, "x-amz-copy-source-", _PRECONDITION_FAILED)


def check_read(headers: Mapping[str, str], current: Current) -> None:
    """A GET's or HEAD's ``If-*`` conditions.

    Raises:
        S3Refusal: 412 for If-Match / If-Unmodified-Since, 304 for If-None-Match /
            If-Modified-Since.
    """
    _check_read(headers, current, "", S3Refusal(304, "NotModified", "Not Modified"))


def _check_read(
    headers: Mapping[str, str], current: Current, prefix: str, not_modified: S3Refusal
) -> None:
    etag = current.etag.strip('"')
    modified = current.modified.replace(microsecond=0)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None and "*" not in _etags(if_match) and etag not in _etags(if_match):
        raise _PRECONDITION_FAILED
    since = _date(headers.get(prefix + "if-unmodified-since", ""))
    if if_match is None and since is not None and modified > since:
        raise _PRECONDITION_FAILED
    if_none = headers.get(prefix + "if-none-match")
    if if_none is not None and ("*" in _etags(if_none) or etag in _etags(if_none)):
        raise not_modified
    since = _date(headers.get(prefix + "if-modified-since", ""))
    if if_none is None and since is not None and modified <= since:
        raise not_modified
