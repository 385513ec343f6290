"""AWS Signature Version 4 (and the older V2) for S3: checking a client's, signing the front's.

The front passes most requests to rclone untouched, and rclone checks their
signature. The few it answers itself (UploadPartCopy, POST Object, conditional
writes, V2-presigned URLs) are checked here, then sent on signed with the
front's own key (``UNSIGNED-PAYLOAD``: the body streams through).

Example:
    >>> key = signing_key("secret", "20260101", "us-east-1")
    >>> len(key)
    32
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from kpipe.local.s3._errors import S3Refusal, access_denied, signature_mismatch

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
# How far a signed request's clock may be from ours (S3's: 15 minutes).
_SKEW = timedelta(minutes=15)
_SPACES = re.compile(r"\s+")
# The sub-resources that are part of a V2 signature's resource.
_V2_SUBRESOURCES = frozenset(
    {
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)


def signing_key(secret: str, day: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """The decoded ``(name, value)`` pairs of a query string, in order."""
    pairs = []
    for item in query_string.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_request(
    method: str,
    raw_path: str,
    pairs: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    payload: str,
) -> str:
    lines = [f"{name}:{_SPACES.sub(' ', headers.get(name, '').strip())}\n" for name in signed]
    return "\n".join(
        [method, raw_path, canonical_query(pairs), "".join(lines), ";".join(signed), payload]
    )


def _string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@dataclass(frozen=True)
class Request:
    """What a signature covers: the method, the path as sent, the query and the headers."""

    method: str
    raw_path: str
    query_string: str
    headers: Mapping[str, str]  # lower-case names


def sign(
    request: Request, access_key: str, secret: str, region: str, now: datetime
) -> dict[str, str]:
    """The headers that sign ``request`` (host must be among its headers) with V4."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {**request.headers, "x-amz-date": amz_date, "x-amz-content-sha256": UNSIGNED}
    signed = sorted(headers)
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    canonical = _canonical_request(
        request.method,
        request.raw_path,
        query_pairs(request.query_string),
        headers,
        signed,
        UNSIGNED,
    )
    signature = _hmac_hex(
        signing_key(secret, amz_date[:8], region), _string_to_sign(amz_date, scope, canonical)
    )
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers


def _parse_time(text: str, fmt: str) -> datetime:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise access_denied("the request's date is malformed") from None


def _secret(secrets: Mapping[str, str], access_key: str) -> str:
    secret = secrets.get(access_key)
    if secret is None:
        raise S3Refusal(403, "InvalidAccessKeyId", "The access key you provided does not exist.")
    return secret


def verify(request: Request, secrets: Mapping[str, str], now: datetime) -> str:
    """Check the request's signature (V4 header or query, V2 header or query).

    Returns:
        The access key that signed it.

    Raises:
        S3Refusal: unsigned, expired, or signed with another secret.
    """
    pairs = query_pairs(request.query_string)
    params = dict(pairs)
    authorization = request.headers.get("authorization", "")
    if params.get("X-Amz-Algorithm") == ALGORITHM:
        return _verify_v4_query(request, pairs, secrets, now)
    if authorization.startswith(ALGORITHM + " "):
        return _verify_v4_header(request, pairs, authorization, secrets, now)
    if "AWSAccessKeyId" in params or authorization.startswith("AWS "):
        return _verify_v2(request, pairs, secrets, now)
    raise access_denied("anonymous requests are not allowed")


def _fields(authorization: str) -> dict[str, str]:
    fields = {}
    for part in authorization[len(ALGORITHM) :].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    return fields


def _check_v4(
    request: Request,
    pairs: list[tuple[str, str]],
    credential: str,
    signed: list[str],
    signature: str,
    amz_date: str,
    payload: str,
    secrets: Mapping[str, str],
) -> str:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise access_denied("the credential is malformed")
    access_key, day, region, service, _ = parts
    secret = _secret(secrets, access_key)
    canonical = _canonical_request(
        request.method, request.raw_path, pairs, request.headers, signed, payload
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    expected = _hmac_hex(
        signing_key(secret, day, region, service), _string_to_sign(amz_date, scope, canonical)
    )
    if not hmac.compare_digest(expected, signature):
        raise signature_mismatch()
    return access_key


def _verify_v4_header(
    request: Request,
    pairs: list[tuple[str, str]],
    authorization: str,
    secrets: Mapping[str, str],
    now: datetime,
) -> str:
    fields = _fields(authorization)
    amz_date = request.headers.get("x-amz-date", "")
    if abs(now - _parse_time(amz_date, "%Y%m%dT%H%M%SZ")) > _SKEW:
        raise S3Refusal(403, "RequestTimeTooSkewed", "The request time is too far from ours.")
    return _check_v4(
        request,
        pairs,
        fields.get("Credential", ""),
        fields.get("SignedHeaders", "").split(";"),
        fields.get("Signature", ""),
        amz_date,
        request.headers.get("x-amz-content-sha256", UNSIGNED),
        secrets,
    )


def _verify_v4_query(
    request: Request, pairs: list[tuple[str, str]], secrets: Mapping[str, str], now: datetime
) -> str:
    params = dict(pairs)
    amz_date = params.get("X-Amz-Date", "")
    try:
        expires = int(params.get("X-Amz-Expires", "0"))
    except ValueError:
        raise access_denied("X-Amz-Expires is not a number") from None
    if now > _parse_time(amz_date, "%Y%m%dT%H%M%SZ") + timedelta(seconds=expires):
        raise access_denied("Request has expired")
    return _check_v4(
        request,
        [(k, v) for k, v in pairs if k != "X-Amz-Signature"],
        params.get("X-Amz-Credential", ""),
        params.get("X-Amz-SignedHeaders", "").split(";"),
        params.get("X-Amz-Signature", ""),
        amz_date,
        UNSIGNED,
        secrets,
    )


def _verify_v2(
    request: Request, pairs: list[tuple[str, str]], secrets: Mapping[str, str], now: datetime
) -> str:
    params = dict(pairs)
    headers = request.headers
    if "AWSAccessKeyId" in params:
        access_key, signature = params["AWSAccessKeyId"], params.get("Signature", "")
        when = params.get("Expires", "")
        if not when.isdigit() or now.timestamp() > int(when):
            raise access_denied("Request has expired")
    else:
        access_key, _, signature = headers["authorization"][4:].partition(":")
        when = "" if "x-amz-date" in headers else headers.get("date", "")
        _check_v2_date(headers.get("x-amz-date") or headers.get("date", ""), now)
    amz = "".join(
        f"{name}:{headers[name].strip()}\n" for name in sorted(headers) if name.startswith("x-amz-")
    )
    sub = sorted((k, v) for k, v in pairs if k in _V2_SUBRESOURCES)
    resource = request.raw_path
    if resource.count("/") == 1:
        resource += "/"  # a bucket's resource is /bucket/ (botocore's auth_path)
    if sub:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
    text = "\n".join(
        [
            request.method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            when,
            amz + resource,
        ]
    )
    return check_v2_signature(secrets, access_key, text, signature)


def _check_v2_date(text: str, now: datetime) -> None:
    """A V2 header-signed request's date: there, readable, and within the skew."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise access_denied("the request's date is missing or malformed") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if abs(now - when) > _SKEW:
        raise S3Refusal(403, "RequestTimeTooSkewed", "The request time is too far from ours.")


def check_v2_signature(
    secrets: Mapping[str, str], access_key: str, text: str, signature: str
) -> str:
    """Check a V2 (HMAC-SHA1, base64) signature of ``text``; returns the access key."""
    secret = _secret(secrets, access_key)
    expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest())
    if not hmac.compare_digest(expected.decode(), signature):
        raise signature_mismatch()
    return access_key


def check_v4_policy(
    secrets: Mapping[str, str], credential: str, policy: str, signature: str
) -> str:
    """Check a V4 POST policy's signature; returns the access key."""
    parts = credential.split("/")
    if len(parts) != 5:
        raise access_denied("x-amz-credential is malformed")
    access_key, day, region, service, _ = parts
    secret = _secret(secrets, access_key)
    expected = _hmac_hex(signing_key(secret, day, region, service), policy)
    if not hmac.compare_digest(expected, signature):
        raise signature_mismatch()
    return access_key
