"""Large objects with boto3's managed transfers: ranged downloads, multipart, server-side copy."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.kpipe.local.s3.conftest import MIB, QUIET

pytestmark = pytest.mark.slow

BIG = bytes(range(256)) * (20 * MIB // 256)  # 20 MiB: a 4K PNG is about that size


@pytest.fixture
def big(s3: Any) -> str:
    """A 20 MiB object put in one request (its CRC32 is the whole object's)."""
    s3.put_object(Bucket=QUIET, Key="big.bin", Body=BIG)
    return "big.bin"


def test_a_ranged_get_is_206_with_the_range_only(s3: Any, big: str) -> None:
    answer = s3.get_object(Bucket=QUIET, Key=big, Range="bytes=100-199")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert answer["ContentRange"] == f"bytes 100-199/{len(BIG)}"
    assert answer["Body"].read() == BIG[100:200]


def test_download_file_of_20_mib(s3: Any, big: str, tmp_path: Path) -> None:
    # boto3 downloads in 8 MiB ranges, each checked against the checksum it is given.
    s3.download_file(QUIET, big, str(tmp_path / "big.bin"))
    assert (tmp_path / "big.bin").read_bytes() == BIG


def test_upload_file_of_20_mib_in_parts(s3: Any, tmp_path: Path) -> None:
    (tmp_path / "up.bin").write_bytes(BIG)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(tmp_path / "up.bin"), QUIET, "up.bin", Config=config)
    head = s3.head_object(Bucket=QUIET, Key="up.bin")
    assert head["ContentLength"] == len(BIG)
    assert hashlib.sha256(s3.get_object(Bucket=QUIET, Key="up.bin")["Body"].read()).digest() == (
        hashlib.sha256(BIG).digest()
    )


def test_managed_copy_of_20_mib(s3: Any, big: str) -> None:
    # Over 8 MiB boto3's copy() is a multipart upload of UploadPartCopy parts.
    s3.copy({"Bucket": QUIET, "Key": big}, QUIET, "copy.bin")
    assert s3.get_object(Bucket=QUIET, Key="copy.bin")["Body"].read() == BIG


def test_upload_part_copy_of_a_range(s3: Any, big: str) -> None:
    upload = s3.create_multipart_upload(Bucket=QUIET, Key="part.bin")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=QUIET,
        Key="part.bin",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": QUIET, "Key": big},
        CopySourceRange="bytes=10-5242889",
    )
    etag = part["CopyPartResult"]["ETag"]
    assert etag.strip('"') == hashlib.md5(BIG[10:5242890]).hexdigest()
    s3.complete_multipart_upload(
        Bucket=QUIET,
        Key="part.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )
    assert s3.get_object(Bucket=QUIET, Key="part.bin")["Body"].read() == BIG[10:5242890]


def test_copy_object_keeps_the_bytes_and_the_type(s3: Any) -> None:
    s3.put_object(Bucket=QUIET, Key="src.png", Body=b"png", ContentType="image/png")
    s3.copy_object(Bucket=QUIET, Key="dst.png", CopySource={"Bucket": QUIET, "Key": "src.png"})
    got = s3.get_object(Bucket=QUIET, Key="dst.png")
    assert (got["Body"].read(), got["ContentType"]) == (b"png", "image/png")


def test_download_fileobj_of_a_multipart_object(s3: Any) -> None:
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(BIG), QUIET, "parts.bin", Config=config)
    out = io.BytesIO()
    s3.download_fileobj(QUIET, "parts.bin", out, Config=config)
    assert out.getvalue() == BIG
