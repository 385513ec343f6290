"""Settings shared by every kpipe process, read once from the environment.

The names are the same in the cluster and on one machine: a Knative Service
gets them from its ConfigMap, Secret and SinkBinding; ``kpipe up`` passes them
to the processes it starts.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kpipe.core import budget


class HomeSettings(BaseSettings):
    """``KPIPE_HOME``: where the processes of one machine keep their state (default ``.kpipe``)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    home: Path = Field(Path(".kpipe"), validation_alias="KPIPE_HOME")


class ObjectStoreSettings(BaseSettings):
    """Where the S3-compatible object store is and how to sign requests to it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    endpoint: str = Field("127.0.0.1:9000", validation_alias="MINIO_ENDPOINT")
    access_key: str = Field("minioadmin", validation_alias="MINIO_ACCESS_KEY", repr=False)
    secret_key: str = Field("minioadmin", validation_alias="MINIO_SECRET_KEY", repr=False)
    secure: bool = Field(False, validation_alias="MINIO_SECURE")
    region: str = Field("us-east-1", validation_alias="MINIO_REGION")
    timeout_s: float = Field(10.0, validation_alias="MINIO_TIMEOUT_S", gt=0)


class InferenceSettings(BaseSettings):
    """Where Triton is and how long an AI step may wait for it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    url: str = Field("127.0.0.1:8000", validation_alias="TRITON_URL")
    timeout_s: float = Field(30.0, validation_alias="TRITON_TIMEOUT_S", gt=0)
    # How long an AI step waits to learn whether Triton serves its model (the
    # connect timeout and the readiness probe's); a Triton that is down or
    # stopped fails the step as retryable after at most this long.
    probe_timeout_s: float = Field(2.0, validation_alias="TRITON_PROBE_TIMEOUT_S", gt=0)


class EventSettings(BaseSettings):
    """Where events go: ``K_SINK`` is injected by a SinkBinding in the cluster."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    sink: str | None = Field(None, validation_alias=AliasChoices("K_SINK", "KPIPE_SINK"))
    timeout_s: float = Field(10.0, validation_alias="KPIPE_SINK_TIMEOUT_S", gt=0)


class DeliverySettings(BaseSettings):
    """How a part answers a delivery that failed for a reason that may pass."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # A retryable failure (Triton or the object store down) is answered 503,
    # so the broker redelivers, while the request is younger than this (from
    # its CloudEvents ``time``); after that the step fails. The parts' triggers
    # retry for longer (kpipe/core/budget.py).
    retry_for_s: float = Field(budget.RETRY_FOR_S, validation_alias="KPIPE_RETRY_FOR_S", ge=0)
    # Steps run at once; a delivery beyond them is answered 429 (retried by the
    # broker with backoff), never queued past the broker's timeout.
    concurrency: int = Field(
        budget.PART_CONCURRENCY, validation_alias="KPIPE_PART_CONCURRENCY", ge=1
    )


class ImageSettings(BaseSettings):
    """Limits applied to every image a part decodes."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Refuse images above this many pixels from the header, before decoding.
    max_pixels: int = Field(50_000_000, validation_alias="KPIPE_MAX_PIXELS", gt=0)


def connect_url(host: str, port: int, path: str = "") -> str:
    """The URL a process on this machine reaches a server listening on ``host`` with.

    A wildcard address (``0.0.0.0``, ``::``) is reached on loopback.

    Example:
        >>> connect_url("0.0.0.0", 8080, "/events")
        'http://127.0.0.1:8080/events'
    """
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


class BucketSettings(BaseSettings):
    """The buckets uploads arrive in and the buckets pipelines write (comma-separated).

    A part reads runs' sources only from ``KPIPE_SOURCE_BUCKETS`` and writes
    only into ``KPIPE_OUTPUT_BUCKETS``; no bucket may be both, so no step can
    write where uploads start runs.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    sources: str = Field("uploads", validation_alias="KPIPE_SOURCE_BUCKETS")
    outputs: str = Field("processed", validation_alias="KPIPE_OUTPUT_BUCKETS")

    @staticmethod
    def _names(text: str) -> frozenset[str]:
        return frozenset(name.strip() for name in text.split(",") if name.strip())

    def source_buckets(self) -> frozenset[str]:
        return self._names(self.sources)

    def output_buckets(self) -> frozenset[str]:
        return self._names(self.outputs)
