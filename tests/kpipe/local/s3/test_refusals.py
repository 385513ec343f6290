"""Malformed or unauthorized requests get a 4xx with S3's error body, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from kpipe.local.s3.server import S3Server
from tests.kpipe.local.s3.conftest import NOTIFIED, QUIET

pytestmark = pytest.mark.slow

RAW = [
    ("PUT", "/uploads/k.jpg", {"x-amz-copy-source": "no-slash", "if-match": '"x"'}),
    ("PUT", "/uploads/k.jpg?partNumber=1&uploadId=u", {"x-amz-copy-source": "/uploads/src"}),
    ("PUT", "/uploads/k.jpg", {"authorization": "AWS4-HMAC-SHA256 Credential=x, Signature=y"}),
    ("PUT", "/uploads/k.jpg", {"authorization": "AWS nobody:c2ln"}),
    ("GET", "/uploads/k.jpg?AWSAccessKeyId=minioadmin&Signature=x&Expires=soon", {}),
    ("GET", "/uploads/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=x", {}),
    ("PUT", "/uploads/dir/", {"if-none-match": "*"}),
    ("POST", "/uploads", {"content-type": "multipart/form-data"}),
    ("GET", "/uploads/k.jpg", {"if-match": '"x"', "authorization": "AWS4-HMAC-SHA256 x"}),
]


@pytest.mark.parametrize(("method", "path", "headers"), RAW)
def test_a_bad_request_is_a_4xx_with_an_error_body(
    store: S3Server, method: str, path: str, headers: dict[str, str]
) -> None:
    answer = httpx.request(method, f"http://{store.endpoint}{path}", headers=headers, content=b"x")
    assert 400 <= answer.status_code < 500
    assert b"<Error>" in answer.content


@pytest.mark.parametrize(
    ("source", "copy_range", "code"),
    [
        ("src", "bytes=5-99", "InvalidRange"),
        ("missing", "bytes=0-1", "NoSuchKey"),
        ("src", "0-2", "InvalidArgument"),
        ("src", "bytes=0", "InvalidArgument"),
        ("src", "bytes=0-2,3-5", "InvalidArgument"),
    ],
)
def test_a_part_copy_that_cannot_be_done_is_refused(
    s3: Any, source: str, copy_range: str, code: str
) -> None:
    s3.put_object(Bucket=QUIET, Key="src", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=NOTIFIED, Key="dst")["UploadId"]
    with pytest.raises(ClientError) as refused:
        s3.upload_part_copy(
            Bucket=NOTIFIED,
            Key="dst",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": QUIET, "Key": source},
            CopySourceRange=copy_range,
        )
    assert refused.value.response["Error"]["Code"] == code


def test_a_non_utf8_header_is_a_400(store: S3Server) -> None:
    answer = httpx.get(
        f"http://{store.endpoint}/{NOTIFIED}/k.jpg", headers=[(b"x-amz-meta-n", b"caf\xe9")]
    )
    assert answer.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in answer.content
