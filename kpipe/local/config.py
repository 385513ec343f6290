"""The settings of the one-machine twin: the stack's ports and paths, and the hosted broker's.

Light to import (pydantic only), so ``kpipe --help`` does not load the stack.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from functions.catalog import DEFAULT_MODULES
from kpipe.core import budget
from kpipe.core.settings import HomeSettings, connect_url

# The Triton model repository, relative to the checkout: `make models` installs the
# weights there, `kpipe up` serves it, `kpipe models push` uploads it.
MODEL_REPOSITORY = Path("triton/models")
# Where the broker's ingress listens unless told otherwise.
BROKER_PORT = 8090

REPO = Path(__file__).resolve().parents[2]
# One functions-framework process per part of the catalogue.
PARTS = tuple(DEFAULT_MODULES)


class StackConfig(HomeSettings):
    """Ports and paths of the local stack; each is a flag of ``kpipe up`` and an env var.

    ``kpipe up`` makes one option of each field that has an env var
    (:func:`kpipe.cli.up`), so a default is written once, here.
    """

    # Where the router (the API and the web page) listens. Not HOST: shells
    # export that name, and a stack must not listen on 0.0.0.0 by chance.
    host: str = Field("127.0.0.1", validation_alias="KPIPE_HOST")
    # Where everything else listens, whatever KPIPE_HOST says: the object store
    # (with its well-known keys), Triton (no authentication), the broker's
    # ingress and the parts are reached through the router, or from this machine.
    internal_host: str = "127.0.0.1"
    router_port: int = Field(8080, validation_alias="KPIPE_ROUTER_PORT")
    s3_port: int = Field(9000, validation_alias="KPIPE_S3_PORT")
    # rclone's own S3 endpoint: the parts read and write there, one hop shorter.
    s3_backend_port: int = Field(9010, validation_alias="KPIPE_S3_BACKEND_PORT")
    triton_port: int = Field(8000, validation_alias="KPIPE_TRITON_HTTP_PORT")
    triton_grpc_port: int = Field(8001, validation_alias="KPIPE_TRITON_GRPC_PORT")
    triton_metrics_port: int = Field(8002, validation_alias="KPIPE_TRITON_METRICS_PORT")
    broker_port: int = Field(BROKER_PORT, validation_alias="KPIPE_BROKER_PORT")
    adapter_port: int = Field(8091, validation_alias="KPIPE_ADAPTER_PORT")
    parts_port: int = Field(8100, validation_alias="KPIPE_PARTS_PORT")
    models: Path = Field(REPO / MODEL_REPOSITORY, validation_alias="KPIPE_TRITON_MODELS")
    buckets: tuple[str, ...] = ("uploads", "processed")
    # Like `mc event add local/uploads ... --event put` in the cluster: outputs
    # written to `processed` send no notification nobody would consume.
    notify_buckets: tuple[str, ...] = ("uploads",)
    access_key: str = Field("minioadmin", validation_alias="MINIO_ACCESS_KEY", repr=False)
    secret_key: str = Field("minioadmin", validation_alias="MINIO_SECRET_KEY", repr=False)
    # Retry schedule of the local broker, exponential from 0.2 s: the router's
    # triggers retry 5 times (about 12 s in all); the parts' 9 times (about
    # 200 s, Knative's default), so a part's 503 while Triton is down is
    # redelivered until KPIPE_RETRY_FOR_S has passed.
    retry: int = budget.LOCAL_ROUTER.retry
    part_retry: int = budget.LOCAL_PART.retry
    backoff_delay_s: float = budget.LOCAL_PART.backoff_delay_s
    part_concurrency: int = budget.PART_CONCURRENCY

    def url(self, port: int, path: str = "") -> str:
        """The URL of a server of the stack other than the router."""
        return connect_url(self.internal_host, port, path)

    def router_url(self, path: str = "") -> str:
        """The router's URL (it listens on ``host``), as the router names itself."""
        return connect_url(self.host, self.router_port, path)

    def part_port(self, name: str) -> int:
        return self.parts_port + 1 + PARTS.index(name)

    @property
    def broker_url(self) -> str:
        return self.url(self.broker_port, "/default/default")


class LocalBrokerSettings(HomeSettings):
    """Where the hosted broker listens and keeps its queue; off unless a config is given.

    ``kpipe up`` sets them for the router's process from :class:`StackConfig`.
    """

    config: Path | None = Field(None, validation_alias="KPIPE_BROKER_CONFIG")
    host: str = Field("127.0.0.1", validation_alias="KPIPE_BROKER_HOST")
    port: int = Field(BROKER_PORT, validation_alias="KPIPE_BROKER_PORT")
    # NORMAL: an accepted event survives the process dying; FULL: a power cut too.
    synchronous: str = Field(
        "NORMAL", validation_alias="KPIPE_BROKER_SYNC", pattern="^(NORMAL|FULL)$"
    )

    @property
    def queue_path(self) -> Path:
        return self.home / "broker.db"
