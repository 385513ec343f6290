"""Every upload path into a notified bucket starts exactly one notification (so one run)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from kpipe.local.s3.server import S3Server
from tests.kpipe.local.s3.conftest import MIB, NOTIFIED, QUIET

pytestmark = pytest.mark.slow

PARTS = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


def _put(s3: Any) -> None:
    s3.put_object(Bucket=NOTIFIED, Key="new.jpg", Body=b"jpeg")


def _presigned_put(s3: Any) -> None:
    url = s3.generate_presigned_url("put_object", Params={"Bucket": NOTIFIED, "Key": "new.jpg"})
    assert httpx.put(url, content=b"jpeg").status_code == 200


def _post(s3: Any) -> None:
    form = s3.generate_presigned_post(NOTIFIED, "new.jpg")
    answer = httpx.post(form["url"], data=form["fields"], files={"file": ("a.jpg", b"jpeg")})
    assert answer.status_code == 204


def _multipart(s3: Any) -> None:
    s3.upload_fileobj(io.BytesIO(b"j" * (11 * MIB)), NOTIFIED, "new.jpg", Config=PARTS)


def _copy(s3: Any) -> None:
    s3.put_object(Bucket=QUIET, Key="src.jpg", Body=b"jpeg")
    s3.copy_object(Bucket=NOTIFIED, Key="new.jpg", CopySource={"Bucket": QUIET, "Key": "src.jpg"})


def _managed_copy(s3: Any) -> None:
    s3.upload_fileobj(io.BytesIO(b"j" * (11 * MIB)), QUIET, "src.jpg", Config=PARTS)
    s3.copy({"Bucket": QUIET, "Key": "src.jpg"}, NOTIFIED, "new.jpg", Config=PARTS)


UPLOADS = [_put, _presigned_put, _post, _multipart, _copy, _managed_copy]


@pytest.mark.parametrize("upload", UPLOADS, ids=lambda f: f.__name__)
def test_one_notification_per_upload(
    s3: Any, upload: Callable[[Any], None], notified: Callable[[], list[str]]
) -> None:
    upload(s3)
    assert notified() == ["new.jpg"]


def test_a_refused_upload_is_not_notified(s3: Any, notified: Callable[[], list[str]]) -> None:
    s3.put_object(Bucket=NOTIFIED, Key="k.jpg", Body=b"1")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=NOTIFIED, Key="k.jpg", Body=b"2", IfNoneMatch="*")
    assert notified() == ["k.jpg"]


def test_a_completion_retried_after_a_503_is_notified(
    store: S3Server, s3: Any, notified: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # rclone completes the upload, the front fails to queue its notification and
    # answers 503; boto3 retries, and rclone alone would say NoSuchUpload.
    make = store.front._durable.make
    failures = [OSError("the disk hiccuped")]

    def failing_once(*args: Any) -> None:
        if failures:
            raise failures.pop()
        make(*args)

    monkeypatch.setattr(store.front._durable, "make", failing_once)
    _multipart(s3)
    assert failures == []
    assert notified() == ["new.jpg"]
