"""`kpipe run`'s upload against a real S3 server, whichever way MINIO_ENDPOINT is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from minio import Minio

from kpipe.uploads import upload

BUCKET = "uploads"


@pytest.mark.parametrize("scheme", ["", "http://"], ids=["host-port", "http-url"])
def test_upload_reads_the_store_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    s3_endpoint: str,
    raw_s3: Minio,
    astronaut_jpeg: bytes,
    scheme: str,
) -> None:
    # What `kpipe run` gets from the environment: the parts accept both forms.
    monkeypatch.setenv("MINIO_ENDPOINT", f"{scheme}{s3_endpoint}")
    monkeypatch.setenv("MINIO_ACCESS_KEY", "test")
    monkeypatch.setenv("MINIO_SECRET_KEY", "test")
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)

    etag = upload(photo, BUCKET, "in/astronaut.jpg")

    stat = raw_s3.stat_object(BUCKET, "in/astronaut.jpg")
    assert (stat.etag, stat.content_type) == (etag, "image/jpeg")
    assert raw_s3.get_object(BUCKET, "in/astronaut.jpg").read() == astronaut_jpeg
