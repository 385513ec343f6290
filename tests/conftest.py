"""Fixtures shared by every test package: free ports, a real S3 server and real photos."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from minio import Minio
from PIL import Image, ImageDraw, ImageFont

from eventing.contract import ObjectRef
from eventing.objectstore import MinioStore
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3.server import S3Server

# The buckets of the S3 server of `s3_endpoint`: uploads arrive in BUCKET,
# steps write into OUTPUT_BUCKET (the parts' default KPIPE_*_BUCKETS).
BUCKET = "uploads"
OUTPUT_BUCKET = "processed"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A factory of free loopback ports (tests never use the stack's fixed ports)."""
    return _free_port


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """``host:port`` of the local object store's rclone, where the parts read and write.

    A fresh one per test (its data in the test's folder), with the two buckets empty.
    """
    with S3Server(
        0, buckets=(BUCKET, OUTPUT_BUCKET), data_dir=tmp_path / "s3", credentials=("test", "test")
    ) as s3:
        yield s3.backend_endpoint


@pytest.fixture
def store_settings(s3_endpoint: str) -> ObjectStoreSettings:
    return ObjectStoreSettings.model_validate(
        {
            "MINIO_ENDPOINT": s3_endpoint,
            "MINIO_ACCESS_KEY": "test",
            "MINIO_SECRET_KEY": "test",
            "MINIO_TIMEOUT_S": 5,
        }
    )


@pytest.fixture
def raw_s3(s3_endpoint: str) -> Minio:
    """A plain minio client, to check objects behind the store's back."""
    return Minio(s3_endpoint, "test", "test", secure=False, region="us-east-1")


@pytest.fixture
def store(store_settings: ObjectStoreSettings) -> Iterator[MinioStore]:
    with MinioStore(store_settings, attempts=1, backoff_s=0.01) as opened:
        yield opened


@pytest.fixture
def upload(raw_s3: Minio) -> Callable[[str, bytes], ObjectRef]:
    """Put bytes at a key of the test bucket; returns its ref."""

    def put(key: str, data: bytes) -> ObjectRef:
        raw_s3.put_object(BUCKET, key, io.BytesIO(data), len(data))
        return ObjectRef(BUCKET, key)

    return put


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 10.0, poll_s: float = 0.01
) -> None:
    """Poll ``predicate`` every ``poll_s`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(poll_s)


def encode(pixels: npt.NDArray[np.uint8], fmt: str = "JPEG", **save: object) -> bytes:
    """Encode an array as image bytes with Pillow."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **save)
    return buf.getvalue()


def rendered_text(
    lines: list[str], background: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    """``lines`` printed with Pillow's bundled font, 900 px wide.

    Dark on white, or on a light label over a real photo (``background``).
    """
    font = ImageFont.load_default(size=36)
    if background is None:
        image = Image.new("RGB", (900, 120 + 80 * len(lines)), "white")
    else:
        image = Image.fromarray(background).resize((900, 120 + 80 * len(lines)))
        ImageDraw.Draw(image).rectangle((40, 40, 860, 60 + 80 * len(lines)), fill=(235, 230, 220))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((70, 60 + 80 * i), line, fill=(20, 20, 30), font=font)
    return np.asarray(image, dtype=np.uint8).copy()


@pytest.fixture(scope="session")
def astronaut() -> npt.NDArray[np.uint8]:
    """scikit-image's astronaut photo (512x512 RGB, one frontal face)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut: npt.NDArray[np.uint8]) -> bytes:
    return encode(astronaut, "JPEG", quality=92)


@pytest.fixture(scope="session")
def cat() -> npt.NDArray[np.uint8]:
    """scikit-image's chelsea photo (a cat, no human face)."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea())


@pytest.fixture(scope="session")
def text_page() -> npt.NDArray[np.uint8]:
    """scikit-image's scanned page of printed text (grayscale)."""
    from skimage import data

    return np.ascontiguousarray(data.page())
