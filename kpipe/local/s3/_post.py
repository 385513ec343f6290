"""Browser form uploads (S3's POST Object): the form, read as it streams, and its signed policy.

A web page posts ``multipart/form-data`` to ``/<bucket>``: the fields that a
presigned POST gave it (``key``, ``policy``, its signature), then ``file``.
The file is spooled to disk (never all in memory); the policy is checked
against every field before the front stores anything.

Example:
    >>> form = PostForm({"key": "in/${filename}"}, filename="cat.jpg")
    >>> form.key
    'in/cat.jpg'
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import quote
from xml.sax.saxutils import escape

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from kpipe.local.s3._errors import S3Refusal, access_denied, xml_headers
from kpipe.local.s3._sigv4 import ALGORITHM, check_v2_signature, check_v4_policy

# Fields are small; past this the form is refused before the file is read.
_MAX_FIELDS_BYTES = 64 * 1024
_SPOOL_BYTES = 1024 * 1024
# S3's form of a policy's expiration: 2026-12-07T12:00:00Z, with or without milliseconds.
_EXPIRATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
# Fields no policy condition has to name (S3's rule).
_UNCHECKED = frozenset(
    {"policy", "signature", "x-amz-signature", "awsaccesskeyid", "file", "x-amz-security-token"}
)
# Form fields that become the stored object's headers.
_OBJECT_HEADERS = frozenset(
    {
        "cache-control",
        "content-type",
        "content-disposition",
        "content-encoding",
        "content-language",
        "expires",
    }
)


def _malformed(message: str) -> S3Refusal:
    return S3Refusal(400, "MalformedPOSTRequest", message)


@dataclass
class PostForm:
    """The fields of a POST Object form (names as sent) and its spooled file."""

    fields: dict[str, str]
    filename: str = ""
    file: IO[bytes] | None = None
    size: int = 0
    _lower: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lower = {k.lower(): v for k, v in self.fields.items()}

    def get(self, name: str, default: str = "") -> str:
        return self._lower.get(name.lower(), default)

    @property
    def key(self) -> str:
        return self.get("key").replace("${filename}", self.filename)

    def object_headers(self) -> dict[str, str]:
        """The headers the stored object gets: its type and the other standard ones, metadata."""
        return {
            name: value
            for name, value in self._lower.items()
            if name in _OBJECT_HEADERS or name.startswith("x-amz-meta-")
        }

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class _Reader:
    """The callbacks of the streaming multipart parser, building a :class:`PostForm`."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.filename = ""
        self.file: IO[bytes] | None = None
        self.size = 0
        self.ended = False
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._is_file = False
        self._field_bytes = 0
        self._after_file = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._finished,
        }

    def _begin(self) -> None:
        self._headers, self._value, self._name, self._is_file = {}, b"", None, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").lower()
        self._headers[name] = self._value.decode("utf-8", "replace")
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name")
        if name is None:
            raise _malformed("a form part has no name")
        self._name = name.decode("utf-8", "replace")
        self._is_file = self._name.lower() == "file"
        if self._is_file:
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.file = tempfile.SpooledTemporaryFile(_SPOOL_BYTES)  # noqa: SIM115 (closed by the form)

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file and self.file is not None and not self._after_file:
            self.file.write(chunk)
            self.size += len(chunk)
            return
        self._field_bytes += len(chunk)
        if self._field_bytes > _MAX_FIELDS_BYTES:
            raise _malformed("the form's fields are too large")
        self._value += chunk

    def _end(self) -> None:
        if self._is_file:
            self._after_file = True  # S3 ignores the fields after the file
        elif self._name is not None and not self._after_file:
            self.fields[self._name] = self._value.decode("utf-8", "replace")
        self._value = b""

    def _finished(self) -> None:
        self.ended = True


async def read_form(content_type: str, body: AsyncIterator[bytes]) -> PostForm:
    """Read a POST Object form as it streams in, its file spooled to disk.

    Raises:
        S3Refusal: not a multipart form, malformed, or without a file.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise _malformed("the body is not a multipart/form-data form")
    reader = _Reader()
    parser = MultipartParser(boundary, cast("MultipartCallbacks", reader.callbacks()))
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        if reader.file is not None:
            reader.file.close()
        raise _malformed(f"the form is malformed: {exc}") from None
    form = PostForm(reader.fields, reader.filename, reader.file, reader.size)
    if not reader.ended or form.file is None:
        form.close()
        raise _malformed("the form has no file, or ends early")
    form.file.seek(0)
    return form


def _policy(form: PostForm) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(form.get("policy"), validate=True))
    except (binascii.Error, ValueError):
        raise _malformed("the policy is not base64 JSON") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions"), list):
        raise _malformed("the policy has no conditions")
    return policy


def check_form(form: PostForm, bucket: str, secrets: Mapping[str, str], now: datetime) -> str:
    """Check the form's signature and that its policy allows every field.

    Returns:
        The access key that signed the policy.

    Raises:
        S3Refusal: unsigned, expired, a field the policy does not allow, a file out of range.
    """
    if not form.get("key"):
        raise S3Refusal(400, "InvalidArgument", "Bucket POST must contain a field named 'key'.")
    if not form.get("policy"):
        raise access_denied("a form upload needs a signed policy")
    if not (form.get("signature") or form.get("x-amz-signature")):
        raise S3Refusal(400, "InvalidArgument", "Bucket POST must contain a signature.")
    if form.get("x-amz-algorithm") == ALGORITHM:
        access_key = check_v4_policy(
            secrets, form.get("x-amz-credential"), form.get("policy"), form.get("x-amz-signature")
        )
    elif form.get("awsaccesskeyid"):
        access_key = check_v2_signature(
            secrets, form.get("awsaccesskeyid"), form.get("policy"), form.get("signature")
        )
    else:
        raise access_denied("the form's signature fields are missing")
    policy = _policy(form)
    expiration = str(policy.get("expiration", ""))
    if _EXPIRATION.fullmatch(expiration) is None:
        raise S3Refusal(400, "InvalidPolicyDocument", "the policy's expiration is not ISO 8601")
    expires = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    if now >= expires.astimezone(UTC):
        raise access_denied("Invalid according to Policy: Policy expired.")
    values = {k.lower(): v for k, v in form.fields.items()} | {"bucket": bucket, "key": form.key}
    checked = {"bucket"}
    for condition in policy["conditions"]:
        checked |= _check(condition, values, form.size)
    extra = {n for n in values if n not in checked and n not in _UNCHECKED}
    extra = {n for n in extra if not n.startswith("x-ignore-")}
    if extra:
        raise access_denied(f"Invalid according to Policy: Extra input fields: {sorted(extra)[0]}")
    return access_key


def _check(condition: Any, values: Mapping[str, str], size: int) -> set[str]:
    """Check one policy condition; returns the field names it covers."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, expected),) = condition.items()
        op, name = "eq", f"${name}"
    elif isinstance(condition, list) and len(condition) == 3:
        op, name, expected = str(condition[0]).lower(), condition[1], condition[2]
    else:
        raise _malformed(f"a policy condition is malformed: {condition!r}")
    if op == "content-length-range":
        try:
            low, high = int(name), int(expected)
        except (TypeError, ValueError):
            raise _malformed(f"a policy condition is malformed: {condition!r}") from None
        if size > high:
            raise S3Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum size.")
        if size < low:
            raise S3Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than allowed.")
        return set()
    field_name = str(name).removeprefix("$").lower()
    actual = values.get(field_name, "")
    if op == "eq":
        ok = actual == str(expected)
    elif op == "starts-with":
        ok = actual.startswith(str(expected))
    else:
        raise _malformed(f"a policy condition is malformed: {condition!r}")
    if not ok:
        raise access_denied(f"Invalid according to Policy: Policy Condition failed: {condition!r}")
    return {field_name}


def post_answer(
    form: PostForm, bucket: str, key: str, etag: bytes, url: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer to a stored form upload: its redirect, or 201 with XML, or 200/204."""
    location = f"{url}/{quote(bucket)}/{quote(key, safe='/~')}".encode()
    redirect = form.get("success_action_redirect") or form.get("redirect")
    if redirect:
        separator = "&" if "?" in redirect else "?"
        query = f"bucket={quote(bucket)}&key={quote(key)}&etag={quote(etag.decode())}"
        return 303, [(b"location", f"{redirect}{separator}{query}".encode())], b""
    headers = [(b"etag", etag), (b"location", location)]
    if form.get("success_action_status") == "201":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>'
            f"<Location>{escape(location.decode())}</Location><Bucket>{escape(bucket)}</Bucket>"
            f"<Key>{escape(key)}</Key><ETag>{escape(etag.decode())}</ETag></PostResponse>"
        ).encode()
        return 201, [*headers, *xml_headers(xml)], xml
    status = 200 if form.get("success_action_status") == "200" else 204
    return status, headers, b""
