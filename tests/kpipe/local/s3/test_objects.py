"""Everyday object requests through the store's front, from boto3, minio-py and plain HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from minio import Minio

from tests.kpipe.local.s3.conftest import NOTIFIED, boto

pytestmark = pytest.mark.slow

ODD_KEYS = [
    "plain.jpg",
    "dir/with space/ü ñ 😀.png",
    "a+b%2Fc.jpg",
    "semi;colon,comma=eq&amp.jpg",
    "tilde~(paren)[br]{c}!'*.png",
    "deep/" * 20 + "leaf",
]


def _status(error: pytest.ExceptionInfo[ClientError]) -> int:
    return int(error.value.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize("key", ODD_KEYS)
def test_put_get_head_delete(s3: Any, key: str) -> None:
    etag = s3.put_object(Bucket=NOTIFIED, Key=key, Body=b"pixels", ContentType="image/png")["ETag"]
    head = s3.head_object(Bucket=NOTIFIED, Key=key)
    assert (head["ETag"], head["ContentLength"], head["ContentType"]) == (etag, 6, "image/png")
    assert s3.get_object(Bucket=NOTIFIED, Key=key)["Body"].read() == b"pixels"
    s3.delete_object(Bucket=NOTIFIED, Key=key)
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=NOTIFIED, Key=key)
    assert _status(gone) == 404


def test_a_missing_key_is_no_such_key(s3: Any) -> None:
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=NOTIFIED, Key="nothing-here")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


@pytest.mark.parametrize(
    "disposition", ['attachment; filename="café.jpg"', "inline; filename*=UTF-8''%C3%A9t%C3%A9.png"]
)
def test_a_non_ascii_header_keeps_its_signature(s3: Any, disposition: str) -> None:
    # The front passes header bytes on as they were signed (they were re-encoded: 403).
    s3.put_object(Bucket=NOTIFIED, Key="cafe.jpg", Body=b"x", ContentDisposition=disposition)
    stored = s3.head_object(Bucket=NOTIFIED, Key="cafe.jpg")["ContentDisposition"]
    # The same bytes come back; http.client reads header bytes as latin-1.
    assert stored.encode("latin-1").decode("utf-8") == disposition


def test_user_metadata_round_trips(s3: Any, minio: Minio) -> None:
    s3.put_object(Bucket=NOTIFIED, Key="m.jpg", Body=b"x", Metadata={"camera": "X100", "n": "1"})
    assert s3.head_object(Bucket=NOTIFIED, Key="m.jpg")["Metadata"] == {"camera": "X100", "n": "1"}
    metadata = minio.stat_object(NOTIFIED, "m.jpg").metadata or {}
    assert metadata["x-amz-meta-camera"] == "X100"


def test_minio_put_and_get(minio: Minio) -> None:
    minio.put_object(NOTIFIED, "via-minio.png", io.BytesIO(b"png"), 3, content_type="image/png")
    response = minio.get_object(NOTIFIED, "via-minio.png")
    try:
        assert response.read() == b"png"
    finally:
        response.close()
        response.release_conn()


def test_presigned_put_then_presigned_get(s3: Any) -> None:
    put = s3.generate_presigned_url("put_object", Params={"Bucket": NOTIFIED, "Key": "p.jpg"})
    assert httpx.put(put, content=b"signed bytes").status_code == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": NOTIFIED, "Key": "p.jpg"})
    answer = httpx.get(get)
    assert (answer.status_code, answer.content) == (200, b"signed bytes")


def test_a_tampered_presigned_url_is_refused(s3: Any) -> None:
    get = s3.generate_presigned_url("get_object", Params={"Bucket": NOTIFIED, "Key": "p.jpg"})
    assert httpx.get(get.replace("p.jpg", "q.jpg")).status_code == 403


def test_a_folder_marker_does_not_block_its_prefix(s3: Any) -> None:
    # S3 consoles' "create folder" and desktop tools put such keys (it was a 500 for the next put).
    s3.put_object(Bucket=NOTIFIED, Key="photos/", Body=b"")
    s3.put_object(Bucket=NOTIFIED, Key="photos/cat.jpg", Body=b"cat")
    assert s3.get_object(Bucket=NOTIFIED, Key="photos/cat.jpg")["Body"].read() == b"cat"


def test_a_folder_marker_on_an_existing_prefix_hides_nothing(s3: Any) -> None:
    s3.put_object(Bucket=NOTIFIED, Key="photos/cat.jpg", Body=b"cat")
    s3.put_object(Bucket=NOTIFIED, Key="photos/", Body=b"")
    listed = s3.list_objects_v2(Bucket=NOTIFIED, Prefix="photos/")
    assert "photos/cat.jpg" in [o["Key"] for o in listed["Contents"]]
    assert s3.head_object(Bucket=NOTIFIED, Key="photos/")["ContentLength"] == 0
    s3.delete_object(Bucket=NOTIFIED, Key="photos/")
    assert s3.get_object(Bucket=NOTIFIED, Key="photos/cat.jpg")["Body"].read() == b"cat"


def test_a_folder_marker_with_a_body_is_refused_with_an_s3_error(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=NOTIFIED, Key="photos/", Body=b"not empty")
    assert _status(refused) == 400
    assert refused.value.response["Error"]["Code"] == "InvalidArgument"


def test_the_answer_has_one_date_header(store: Any, s3: Any) -> None:
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": NOTIFIED})
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert len(answer.headers.get_list("date")) == 1


@pytest.mark.parametrize(
    ("there", "refused_key", "status", "code"),
    [
        ("a/b.jpg", "a", 409, "XMinioObjectExistsAsDirectory"),
        ("f.jpg", "f.jpg/g.jpg", 400, "XMinioParentIsObject"),
    ],
)
def test_a_key_that_cannot_be_a_file_is_refused_and_hides_nothing(
    s3: Any, there: str, refused_key: str, status: int, code: str
) -> None:
    # Objects are files: "a" cannot be a file beside "a/b.jpg", nor "f.jpg/g.jpg" under a file.
    s3.put_object(Bucket=NOTIFIED, Key=there, Body=b"there")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=NOTIFIED, Key=refused_key, Body=b"x")
    assert _status(refused) == status
    assert refused.value.response["Error"]["Code"] == code
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=NOTIFIED)["Contents"]] == [there]


@pytest.fixture
def v2(store: Any) -> Any:
    """boto3 signing every request with V2, as older tools do."""
    return boto(store, Config(signature_version="s3"))


def test_v2_signed_requests_work(v2: Any) -> None:
    v2.put_object(Bucket=NOTIFIED, Key="dir/a b+c.jpg", Body=b"v2")
    assert v2.get_object(Bucket=NOTIFIED, Key="dir/a b+c.jpg")["Body"].read() == b"v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=NOTIFIED)["Contents"]] == ["dir/a b+c.jpg"]


@pytest.mark.parametrize(
    ("date", "code"),
    [("Tue, 07 Jul 2010 21:53:04 GMT", "RequestTimeTooSkewed"), ("Bad Date", "AccessDenied")],
)
def test_a_v2_request_out_of_time_is_refused(v2: Any, date: str, code: str) -> None:
    def dated(request: Any, **_: Any) -> None:
        request.headers["x-amz-date"] = date

    v2.meta.events.register("before-sign.s3.PutObject", dated)
    with pytest.raises(ClientError) as refused:
        v2.put_object(Bucket=NOTIFIED, Key="k.jpg", Body=b"x")
    assert (_status(refused), refused.value.response["Error"]["Code"]) == (403, code)


def test_a_second_upload_of_a_key_started_inside_the_first_finishes(s3: Any) -> None:
    # s3-tests' atomic dual write: the first upload's body starts the second.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": NOTIFIED, "Key": "k.jpg"})

    def body() -> Iterator[bytes]:
        yield b"fir"
        assert httpx.put(url, content=b"second", timeout=10).status_code == 200
        yield b"st"

    answer = httpx.put(url, content=body(), headers={"content-length": "5"}, timeout=10)
    assert answer.status_code == 200
    assert s3.get_object(Bucket=NOTIFIED, Key="k.jpg")["Body"].read() == b"first"
