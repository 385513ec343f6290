"""The Celery peer: its step does kpipe's no-op work on a real S3 server, chained by key."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from minio import Minio
from PIL import Image

from bench.figures._celery import (
    celery_worker,
    chain_keys,
    make_chain,
    redis_problem,
    run_chain,
    wait_ready,
)
from bench.peer import STEP_TASK, PeerSettings, create_app, reencode_png, step
from kpipe.local.s3.server import S3Server
from tests.conftest import encode

BUCKET = "processed"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server(0, buckets=(BUCKET,)) as server:
        yield server


@pytest.fixture
def client(s3: S3Server) -> Minio:
    # The peer reads and writes where kpipe's parts do: the store's own S3 port.
    return Minio(s3.backend_endpoint, "minioadmin", "minioadmin", secure=False)


@pytest.fixture(scope="module")
def tiny(astronaut: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An 8x8 cut of a real photo, as the benchmark's chains run on."""
    return np.asarray(Image.fromarray(astronaut).resize((8, 8), Image.Resampling.BOX))


def _pixels(data: bytes) -> tuple[str | None, npt.NDArray[np.uint8]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_reencode_png_keeps_the_decoded_pixels(tiny: npt.NDArray[np.uint8], fmt: str) -> None:
    data = encode(tiny, fmt)
    _, decoded = _pixels(data)
    out_format, pixels = _pixels(reencode_png(data))
    assert out_format == "PNG"
    np.testing.assert_array_equal(pixels, decoded)


def test_a_step_gets_reencodes_and_puts(client: Minio, tiny: npt.NDArray[np.uint8]) -> None:
    source = encode(tiny, "PNG")
    client.put_object(BUCKET, "peer/src.png", io.BytesIO(source), len(source), "image/png")
    assert step(client, BUCKET, "peer/src.png", "peer/out.png") == "peer/out.png"
    response = client.get_object(BUCKET, "peer/out.png")
    try:
        out_format, pixels = _pixels(response.read())
    finally:
        response.close()
        response.release_conn()
    assert out_format == "PNG"
    np.testing.assert_array_equal(pixels, tiny)


def test_a_chain_hands_each_steps_output_to_the_next() -> None:
    app = create_app(PeerSettings())
    tasks = make_chain(app, "src.png", "peer/c0", 3).tasks
    assert [t.task for t in tasks] == [STEP_TASK] * 3
    keys = chain_keys("peer/c0", 3)
    assert keys == ["peer/c0/s0.png", "peer/c0/s1.png", "peer/c0/s2.png"]
    # The first step reads the source; each later one gets its input from the one before.
    assert [tuple(t.args) for t in tasks] == [("src.png", keys[0]), (keys[1],), (keys[2],)]


def test_the_worker_gets_the_settings_through_its_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = PeerSettings(redis_url="redis://127.0.0.1:1/3", queue="q1", s3_endpoint="h:1")
    assert (settings.redis_url, settings.queue, settings.s3_endpoint) == (
        "redis://127.0.0.1:1/3",
        "q1",
        "h:1",
    )
    for name, value in settings.env().items():
        monkeypatch.setenv(name, value)
    assert PeerSettings() == settings


def test_an_unreachable_redis_is_a_reason_not_an_error() -> None:
    problem = redis_problem("redis://127.0.0.1:1/0", timeout_s=0.5)
    assert problem is not None
    assert "did not answer PING" in problem


@pytest.mark.slow
def test_a_real_worker_runs_a_chain(
    s3: S3Server, client: Minio, tiny: npt.NDArray[np.uint8], tmp_path: Path
) -> None:
    settings = PeerSettings(
        queue=f"kpipe-bench-test-{uuid.uuid4().hex[:8]}", s3_endpoint=s3.backend_endpoint
    )
    if (problem := redis_problem(settings.redis_url)) is not None:
        pytest.skip(problem)
    source = encode(tiny, "PNG")
    client.put_object(BUCKET, "peer/chain/src.png", io.BytesIO(source), len(source), "image/png")
    with celery_worker(settings, tmp_path, concurrency=1) as worker:
        wait_ready(worker, "peer/chain/src.png", "peer/chain/ready", 2)
        app = worker.client()
        try:
            started, ended = run_chain(app, "peer/chain/src.png", "peer/chain/c1", 3)
        finally:
            app.close()
    assert started <= ended
    response = client.get_object(BUCKET, "peer/chain/c1/s2.png")
    try:
        _, pixels = _pixels(response.read())
    finally:
        response.close()
        response.release_conn()
    np.testing.assert_array_equal(pixels, tiny)
