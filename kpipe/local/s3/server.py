"""The local object store: rclone's S3 server on disk, behind kpipe's notifying S3 front.

Objects live as files under ``--data-dir`` (``$KPIPE_HOME/s3`` under
``kpipe up``), so they survive Ctrl-C, ``kill -9`` and a reboot, and memory
does not grow with the bytes stored. The front (``--port``, the endpoint users,
``mc``, boto3 and the AWS CLI talk to) forwards the whole S3 API to rclone
and, for every object created in a notified bucket, fsyncs it and queues
MinIO's webhook notification on disk before it answers (at least once, like
MinIO's ``queue_dir``). kpipe's own parts may use rclone's endpoint
(``--backend-port``) directly: their outputs need no notification, and it
saves a hop per request. ``GET /minio/health/live`` answers 200 like MinIO.

Example:
    $ MINIO_ACCESS_KEY=minioadmin MINIO_SECRET_KEY=minioadmin python -m kpipe.local.s3.server \\
        --data-dir .kpipe/s3 --port 9000 --bucket uploads --bucket processed \\
        --notify-bucket uploads --webhook http://127.0.0.1:8082/ --webhook-token s3cret
    $ mc alias set local http://127.0.0.1:9000 minioadmin minioadmin
"""

from __future__ import annotations

import logging
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import click
import uvicorn

from eventing.notifications import Origin
from kpipe.local.s3._notify import WebhookNotifier
from kpipe.local.s3._rclone import BackendUnavailable, RcloneBackend
from kpipe.local.s3._running import Running
from kpipe.local.s3.front import S3Front

log = logging.getLogger(__name__)

DEFAULT_CREDENTIALS = ("minioadmin", "minioadmin")


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class S3Server(Running):
    """The whole local object store (rclone, notifier, front), the front in a thread.

    Args:
        port: the front's port (0: any free port, see :attr:`port`).
        buckets: buckets created at start (existing ones are kept).
        webhooks: webhook URLs that get every notification.
        token: the bearer token sent to the webhooks.
        notify_buckets: buckets to notify for; None: all.
        host: the interface to listen on.
        data_dir: where objects and the notification queue live; None: a
            temporary directory removed at :meth:`stop`.
        credentials: the access and secret key clients sign with.
        backend_port: rclone's own port (0: any free port).
        cors_origins: the origins browsers may call the store from (``*``: all).
    """

    def __init__(
        self,
        port: int = 9000,
        buckets: Iterable[str] = ("uploads", "processed"),
        webhooks: Iterable[str] = (),
        token: str | None = None,
        notify_buckets: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        data_dir: Path | None = None,
        credentials: tuple[str, str] = DEFAULT_CREDENTIALS,
        backend_port: int = 0,
        cors_origins: Iterable[str] = ("*",),
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kpipe-s3-") if data_dir is None else None
        home = data_dir if data_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.backend = RcloneBackend(
            home / "objects", [credentials], buckets, host=host, port=backend_port
        )
        self.notifier = WebhookNotifier(home / "notifications.db", webhooks, token)
        self._socket = _listen(host, port)
        self.host, self.port = host, int(self._socket.getsockname()[1])
        self.front = S3Front(
            self.backend,
            self.notifier,
            credentials,
            notify_buckets,
            Origin(principal=credentials[0], endpoint=f"http://{host}:{self.port}"),
            cors_origins=cors_origins,
        )
        # rclone's answers carry their own Date and Server headers.
        config = uvicorn.Config(
            self.front,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The front's ``host:port``, as the minio client wants it."""
        return f"{self.host}:{self.port}"

    @property
    def backend_endpoint(self) -> str:
        """rclone's own ``host:port`` (no notifications)."""
        return self.backend.endpoint

    def start(self) -> None:
        """Start rclone, the notifier and the front."""
        self.backend.start()
        self.notifier.start()
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise BackendUnavailable(f"the S3 front on {self.endpoint} did not start")
            time.sleep(0.01)
        log.info("S3 server on http://%s (data in %s)", self.endpoint, self.backend.data_dir)

    def stop(self) -> None:
        """Stop the front, then the notifier (its queue stays on disk), then rclone."""
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
        self.notifier.stop()
        self.backend.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KPIPE_S3_HOST")
@click.option("--port", type=int, default=9000, show_default=True, envvar="KPIPE_S3_PORT")
@click.option(
    "--backend-port",
    type=int,
    default=0,
    envvar="KPIPE_S3_BACKEND_PORT",
    help="rclone's own port (default: any free port).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    envvar="KPIPE_S3_DATA_DIR",
    help="Where objects and the notification queue live.",
)
@click.option("--bucket", "buckets", multiple=True, envvar="KPIPE_S3_BUCKETS")
@click.option("--webhook", "webhooks", multiple=True, envvar="KPIPE_WEBHOOK_URL")
@click.option("--webhook-token", default=None, envvar="KPIPE_WEBHOOK_TOKEN")
@click.option("--notify-bucket", "notify_buckets", multiple=True, help="Default: all buckets.")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    envvar="KPIPE_S3_CORS_ORIGINS",
    help="Origins browsers may call the store from (default: all, '*').",
)
@click.option("--access-key", envvar="MINIO_ACCESS_KEY", default=DEFAULT_CREDENTIALS[0])
@click.option("--secret-key", envvar="MINIO_SECRET_KEY", default=DEFAULT_CREDENTIALS[1])
def main(
    host: str,
    port: int,
    backend_port: int,
    data_dir: Path,
    buckets: tuple[str, ...],
    webhooks: tuple[str, ...],
    webhook_token: str | None,
    notify_buckets: tuple[str, ...],
    cors_origins: tuple[str, ...],
    access_key: str,
    secret_key: str,
) -> None:
    """Serve the local S3-compatible object store with bucket notifications."""
    from kpipe.core.logs import configure_logging

    configure_logging("s3")
    server = S3Server(
        port=port,
        buckets=_split(buckets) or ("uploads", "processed"),
        webhooks=_split(webhooks),
        token=webhook_token or None,
        notify_buckets=_split(notify_buckets) or None,
        host=host,
        data_dir=data_dir,
        credentials=(access_key, secret_key),
        backend_port=backend_port,
        cors_origins=_split(cors_origins) or ("*",),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        # Serve until stopped; if rclone dies, exit so the supervisor restarts both.
        while not stop.wait(0.5):
            if not server.backend.alive():
                log.error("rclone exited; stopping the S3 front")
                raise SystemExit(1)


if __name__ == "__main__":
    main()
