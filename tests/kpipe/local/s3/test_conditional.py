"""Conditional requests: PUT If-None-Match / If-Match, copy-source conditions, GET conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.kpipe.local.s3.conftest import QUIET

pytestmark = pytest.mark.slow


@pytest.fixture
def etag(s3: Any) -> str:
    return str(s3.put_object(Bucket=QUIET, Key="k.jpg", Body=b"first")["ETag"])


def _refused(call: Any, **params: Any) -> int:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return int(refused.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _body(s3: Any, key: str = "k.jpg") -> bytes:
    return bytes(s3.get_object(Bucket=QUIET, Key=key)["Body"].read())


def test_if_none_match_star_does_not_overwrite(s3: Any, etag: str) -> None:
    put = {"Bucket": QUIET, "Key": "k.jpg", "Body": b"second"}
    assert _refused(s3.put_object, **put, IfNoneMatch="*") == 412
    assert _body(s3) == b"first"


def test_if_none_match_star_creates_a_new_key(s3: Any) -> None:
    s3.put_object(Bucket=QUIET, Key="new.jpg", Body=b"new", IfNoneMatch="*")
    assert _body(s3, "new.jpg") == b"new"


def test_if_match_another_etag_does_not_overwrite(s3: Any, etag: str) -> None:
    wrong = '"00000000000000000000000000000000"'
    assert _refused(s3.put_object, Bucket=QUIET, Key="k.jpg", Body=b"second", IfMatch=wrong) == 412
    assert _body(s3) == b"first"


def test_if_match_the_etag_overwrites(s3: Any, etag: str) -> None:
    s3.put_object(Bucket=QUIET, Key="k.jpg", Body=b"second", IfMatch=etag)
    assert _body(s3) == b"second"


def test_if_match_on_a_missing_key_is_404(s3: Any) -> None:
    assert _refused(s3.put_object, Bucket=QUIET, Key="no.jpg", Body=b"x", IfMatch='"abc"') == 404


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ("CopySourceIfMatch", False),
        ("CopySourceIfNoneMatch", True),
    ],
)
def test_a_failed_copy_source_condition_copies_nothing(
    s3: Any, etag: str, condition: str, matches: bool
) -> None:
    value = etag if matches else '"00000000000000000000000000000000"'
    params = {"Bucket": QUIET, "Key": "dst.jpg", "CopySource": f"{QUIET}/k.jpg", condition: value}
    assert _refused(s3.copy_object, **params) == 412
    assert _refused(s3.head_object, Bucket=QUIET, Key="dst.jpg") == 404


def test_a_met_copy_source_condition_copies(s3: Any, etag: str) -> None:
    s3.copy_object(Bucket=QUIET, Key="dst.jpg", CopySource=f"{QUIET}/k.jpg", CopySourceIfMatch=etag)
    assert _body(s3, "dst.jpg") == b"first"


def test_get_if_none_match_is_304(s3: Any, etag: str) -> None:
    assert _refused(s3.get_object, Bucket=QUIET, Key="k.jpg", IfNoneMatch=etag) == 304


def test_get_if_match_another_etag_is_412(s3: Any, etag: str) -> None:
    assert _refused(s3.get_object, Bucket=QUIET, Key="k.jpg", IfMatch='"nope"') == 412


def test_get_if_modified_since_now_is_304(s3: Any, etag: str) -> None:
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert _refused(s3.get_object, Bucket=QUIET, Key="k.jpg", IfModifiedSince=later) == 304


def test_a_copy_to_itself_needs_new_metadata(s3: Any, etag: str) -> None:
    source = {"Bucket": QUIET, "Key": "k.jpg"}
    assert _refused(s3.copy_object, Bucket=QUIET, Key="k.jpg", CopySource=source) == 400
    s3.copy_object(
        Bucket=QUIET,
        Key="k.jpg",
        CopySource=source,
        Metadata={"camera": "X100"},
        MetadataDirective="REPLACE",
    )
    assert s3.head_object(Bucket=QUIET, Key="k.jpg")["Metadata"] == {"camera": "X100"}
