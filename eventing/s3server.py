"""The local S3-compatible server: moto's S3 plus MinIO-style webhook notifications.

After each successful PUT object, copy (PUT with ``x-amz-copy-source``) and
CompleteMultipartUpload on a path-style URL, the server reads the object's
size, ETag and content type from moto's backend (so aws-chunked uploads are
reported right) and posts ``s3:ObjectCreated:Put`` / ``:Copy`` /
``:CompleteMultipartUpload`` in MinIO's webhook shape to each webhook, at least
once. ``GET /minio/health/live`` answers 200 like MinIO. Any credentials work.

moto keeps its buckets in process-wide state: run one server per process.

Example:
    $ python -m eventing.s3server --port 9000 --bucket uploads --bucket processed \\
        --webhook http://127.0.0.1:8082/ --webhook-token s3cret
    $ mc alias set local http://127.0.0.1:9000 minioadmin minioadmin
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

import click
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import BaseWSGIServer, make_server

from eventing._notify import WebhookNotifier
from eventing.notifications import Origin, notification_for

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HEALTH_PATHS = frozenset({"/minio/health/live", "/minio/health/ready"})
# PUTs on these sub-resources change an object's metadata or upload a part.
_NOT_CREATING = frozenset(
    {"partNumber", "uploadId", "tagging", "acl", "retention", "legal-hold", "restore"}
)


def _backend() -> Any:
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _event_name(environ: dict[str, Any]) -> str | None:
    """The ObjectCreated event a request would cause, or None."""
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "PUT" and not _NOT_CREATING & query.keys():
        copying = "HTTP_X_AMZ_COPY_SOURCE" in environ
        return "s3:ObjectCreated:Copy" if copying else "s3:ObjectCreated:Put"
    if method == "POST" and "uploadId" in query:
        return "s3:ObjectCreated:CompleteMultipartUpload"
    return None


def _bucket_and_key(environ: dict[str, Any]) -> tuple[str, str]:
    # WSGI gives the percent-decoded path as latin-1 text; keys are UTF-8.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class NotifyingS3App:
    """WSGI middleware over moto's S3 that publishes object-created notifications.

    Args:
        app: moto's WSGI app.
        notifier: where notifications go.
        notify_buckets: buckets to notify for; None: all.
        origin: the server identity put in notifications.
    """

    def __init__(
        self,
        app: WSGIApp,
        notifier: WebhookNotifier,
        notify_buckets: Iterable[str] | None = None,
        origin: Origin | None = None,
    ) -> None:
        self._app = app
        self._notifier = notifier
        self._buckets = frozenset(notify_buckets) if notify_buckets is not None else None
        self._origin = origin or Origin()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") in HEALTH_PATHS:
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        event_name = _event_name(environ)
        bucket, key = _bucket_and_key(environ)
        if event_name is None or not key or (self._buckets and bucket not in self._buckets):
            return self._app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            captured["status"], captured["headers"] = int(status.split()[0]), headers
            return start_response(status, headers, *args)

        result = self._app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        # CompleteMultipartUpload may answer 200 with an <Error> body, so the
        # object itself (not the status alone) decides.
        if captured.get("status") == 200:
            self._publish(bucket, key, event_name, environ, dict(captured["headers"]))
        return [body]

    def _publish(
        self,
        bucket: str,
        key: str,
        event_name: str,
        environ: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        obj = _backend().get_object(bucket, key)
        if obj is None:
            return
        metadata = {str(k): str(v) for k, v in obj.metadata.items()}
        content_type = metadata.pop("content-type", "binary/octet-stream")
        user_metadata = {
            "-".join(p.capitalize() for p in k.split("-")): v
            for k, v in metadata.items()
            if k.lower().startswith("x-amz-meta-")
        }
        version_id = {k.lower(): v for k, v in headers.items()}.get("x-amz-version-id")
        payload = notification_for(
            bucket,
            key,
            obj.size,
            obj.etag,
            content_type,
            event_name,
            version_id=version_id if version_id and version_id != "null" else None,
            user_metadata=user_metadata,
            mod_time_ns=int(obj.last_modified.replace(tzinfo=UTC).timestamp() * 1e9),
            origin=Origin(
                source_host=str(environ.get("REMOTE_ADDR", "")),
                user_agent=str(environ.get("HTTP_USER_AGENT", "")),
                endpoint=self._origin.endpoint,
            ),
            event_time=datetime.now(UTC),
        )
        self._notifier.publish(payload)


class S3Server:
    """moto S3 with notifications on ``host:port``, in a background thread.

    Args:
        port: the TCP port (0: any free port, see :attr:`port`).
        buckets: buckets created at start (existing ones are kept).
        webhooks: webhook URLs that get every notification.
        token: the bearer token sent to the webhooks.
        notify_buckets: buckets to notify for; None: all.
        host: the interface to listen on.
        notifier: a ready notifier, instead of one built from webhooks/token.
    """

    def __init__(
        self,
        port: int = 9000,
        buckets: Iterable[str] = ("uploads", "processed"),
        webhooks: Iterable[str] = (),
        token: str | None = None,
        notify_buckets: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        notifier: WebhookNotifier | None = None,
    ) -> None:
        self.notifier = notifier or WebhookNotifier(webhooks, token)
        self._buckets = tuple(buckets)
        moto_app = create_backend_app("s3")
        app = NotifyingS3App(
            moto_app, self.notifier, notify_buckets, Origin(endpoint=f"http://{host}:{port}")
        )
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """``host:port``, as the minio client wants it."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Create the buckets, start the notifier and serve."""
        backend = _backend()
        for bucket in self._buckets:
            if bucket not in backend.buckets:
                backend.create_bucket(bucket, "us-east-1")
        self.notifier.start()
        self._thread.start()
        log.info("S3 server on http://%s (buckets: %s)", self.endpoint, ", ".join(self._buckets))

    def stop(self) -> None:
        """Stop serving, then stop the notifier."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
        self.notifier.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KPIPE_S3_HOST")
@click.option("--port", type=int, default=9000, show_default=True, envvar="KPIPE_S3_PORT")
@click.option("--bucket", "buckets", multiple=True, envvar="KPIPE_S3_BUCKETS")
@click.option("--webhook", "webhooks", multiple=True, envvar="KPIPE_WEBHOOK_URL")
@click.option("--webhook-token", default=None, envvar="KPIPE_WEBHOOK_TOKEN")
@click.option("--notify-bucket", "notify_buckets", multiple=True, help="Default: all buckets.")
def main(
    host: str,
    port: int,
    buckets: tuple[str, ...],
    webhooks: tuple[str, ...],
    webhook_token: str | None,
    notify_buckets: tuple[str, ...],
) -> None:
    """Serve the local S3-compatible object store with bucket notifications."""
    from kpipe.logs import configure_logging

    configure_logging("s3")
    server = S3Server(
        port=port,
        buckets=_split(buckets) or ("uploads", "processed"),
        webhooks=_split(webhooks),
        token=webhook_token or None,
        notify_buckets=_split(notify_buckets) or None,
        host=host,
    )
    with server:
        threading.Event().wait()  # serve until interrupted


if __name__ == "__main__":
    main()
