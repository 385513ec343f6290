"""The peer kpipe is measured against: a Celery 5 app whose task is one no-op image step.

What a Python user would write instead of a kpipe pipeline: Celery with
Redis as broker and result backend, one task per step, steps linked with
``celery.chain``. The task does what kpipe's no-op ``resize`` step does: get
the object from S3 with the ``minio`` client, decode it with Pillow into
pixels, encode them as PNG, put the result back; it returns the output's key,
which ``chain`` hands to the next step as its input.

The benchmark starts a real worker on this module (see
:mod:`bench.figures._celery`)::

    $ KPIPE_BENCH_REDIS_URL=redis://127.0.0.1:6379/0 MINIO_ENDPOINT=127.0.0.1:9010 \\
        celery -A bench.peer worker --pool prefork --concurrency 2 -Q kpipe-bench-peer

Example:
    >>> app = create_app(PeerSettings())
    >>> STEP_TASK in app.tasks
    True
"""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import urllib3
from celery import Celery
from minio import Minio
from PIL import Image
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

STEP_TASK = "bench.peer.step"


class PeerSettings(BaseSettings):
    """Where the peer's Redis, queue and S3 server are (env vars, read once)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="KPIPE_BENCH_REDIS_URL")
    # One queue per benchmark run: the machine's Redis may serve other apps' workers.
    queue: str = Field("kpipe-bench-peer", validation_alias="KPIPE_BENCH_PEER_QUEUE")
    s3_endpoint: str = Field("127.0.0.1:9010", validation_alias="MINIO_ENDPOINT")
    access_key: str = Field("minioadmin", validation_alias="MINIO_ACCESS_KEY", repr=False)
    secret_key: str = Field("minioadmin", validation_alias="MINIO_SECRET_KEY", repr=False)
    bucket: str = Field("processed", validation_alias="KPIPE_BENCH_PEER_BUCKET")
    s3_timeout_s: float = Field(10.0, validation_alias="MINIO_TIMEOUT_S", gt=0)

    def env(self) -> dict[str, str]:
        """The env vars that give a worker process these settings."""
        return {
            "KPIPE_BENCH_REDIS_URL": self.redis_url,
            "KPIPE_BENCH_PEER_QUEUE": self.queue,
            "MINIO_ENDPOINT": self.s3_endpoint,
            "MINIO_ACCESS_KEY": self.access_key,
            "MINIO_SECRET_KEY": self.secret_key,
            "KPIPE_BENCH_PEER_BUCKET": self.bucket,
            "MINIO_TIMEOUT_S": str(self.s3_timeout_s),
        }


def reencode_png(data: bytes) -> bytes:
    """Decode an image into RGB pixels and encode them as PNG, as kpipe's no-op step does."""
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class _Stores:
    """One S3 client per process: a prefork worker's children must not share a pool."""

    def __init__(self, settings: PeerSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._by_pid: dict[int, Minio] = {}

    def get(self) -> Minio:
        pid = os.getpid()
        with self._lock:
            client = self._by_pid.get(pid)
            if client is None:
                s = self._settings
                timeout = urllib3.Timeout(connect=s.s3_timeout_s, read=s.s3_timeout_s)
                pool = urllib3.PoolManager(timeout=timeout, retries=urllib3.Retry(total=2))
                client = Minio(
                    s.s3_endpoint, s.access_key, s.secret_key, secure=False, http_client=pool
                )
                self._by_pid[pid] = client
            return client


def step(client: Minio, bucket: str, source_key: str, output_key: str) -> str:
    """One no-op step: get ``source_key``, re-encode it as PNG, put it at ``output_key``."""
    response = client.get_object(bucket, source_key)
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    png = reencode_png(data)
    client.put_object(bucket, output_key, io.BytesIO(png), len(png), content_type="image/png")
    return output_key


def create_app(settings: PeerSettings) -> Celery:
    """The peer's Celery app: Redis broker and backend, JSON, the one step task."""
    app = Celery("kpipe-bench-peer", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,  # the machine's Redis is shared: leave nothing behind for long
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # No remote-control mailbox: nothing broadcast to (or from) other apps' workers.
        worker_enable_remote_control=False,
    )
    stores = _Stores(settings)

    # shared=False: every app (the worker's, each client's) keeps its own task, its own settings.
    @app.task(name=STEP_TASK, shared=False)  # type: ignore[untyped-decorator]
    def step_task(source_key: str, output_key: str) -> str:
        return step(stores.get(), settings.bucket, source_key, output_key)

    return app


# What ``celery -A bench.peer worker`` loads: the settings of the worker's env.
app = create_app(PeerSettings())
