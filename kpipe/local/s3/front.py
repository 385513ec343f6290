"""kpipe's S3 front: a gateway over the object store that acknowledges uploads durably.

Every request is forwarded unchanged (its SigV4 signature included) to the
S3 server behind (``rclone serve s3``), and its answer streamed back. For a
request that creates an object in a bucket with notifications -- PutObject,
CopyObject (a PUT with ``x-amz-copy-source``) and CompleteMultipartUpload --
the front holds the answer until the object's file and directory are
fsynced and MinIO's webhook notification for it is in the durable queue
(:mod:`kpipe.local.s3._notify`), then answers. So an upload that got its 200 is on
disk and will be notified, at least once, whatever happens next: MinIO's
behaviour with a ``queue_dir``.

Example:
    >>> front = S3Front(backend, notifier, notify_buckets={"uploads"})  # doctest: +SKIP
    >>> uvicorn.run(front, port=9000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

import aiohttp
from minio.error import S3Error
from yarl import URL

from eventing.notifications import Origin, notification_for
from eventing.objectstore import minio_client
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3._notify import WebhookNotifier
from kpipe.local.s3._rclone import fsync_object

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEALTH_PATHS = frozenset({"/minio/health/live", "/minio/health/ready"})
# Hop-by-hop headers (RFC 9110 7.6.1) and Expect, which the front answers itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
# PUTs on these sub-resources change an object's metadata or upload a part.
_NOT_CREATING = frozenset(
    {"partNumber", "uploadId", "tagging", "acl", "retention", "legal-hold", "restore"}
)


class Backend(Protocol):
    """The S3 server behind the front."""

    @property
    def url(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def object_path(self, bucket: str, key: str) -> Path: ...


@dataclass(frozen=True)
class _Creation:
    """What a creating request creates: its event name, bucket and key."""

    event_name: str
    bucket: str
    key: str


def _creation(scope: Scope, headers: dict[str, str]) -> _Creation | None:
    """The object a request would create, or None for any other request."""
    # ASGI gives the percent-decoded path; raw_path is what was signed.
    path = unquote(scope["raw_path"].decode("latin-1"), encoding="utf-8", errors="replace")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    method = scope["method"]
    if method == "PUT" and not _NOT_CREATING & query.keys():
        copying = "x-amz-copy-source" in headers
        return _Creation(
            "s3:ObjectCreated:Copy" if copying else "s3:ObjectCreated:Put", bucket, key
        )
    if method == "POST" and "uploadId" in query:
        return _Creation("s3:ObjectCreated:CompleteMultipartUpload", bucket, key)
    return None


def _s3_error(status: int, code: str, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    headers = [(b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode())]
    return status, headers, body


class S3Front:
    """The ASGI app of the front.

    Args:
        backend: the S3 server every request goes to.
        notifier: the durable webhook queue.
        credentials: an access key the front reads new objects' metadata with.
        notify_buckets: buckets whose new objects are notified; None: all.
        origin: the server identity put in notifications.
    """

    def __init__(
        self,
        backend: Backend,
        notifier: WebhookNotifier,
        credentials: tuple[str, str],
        notify_buckets: Iterable[str] | None = None,
        origin: Origin | None = None,
    ) -> None:
        self._backend = backend
        self._notifier = notifier
        self._buckets = frozenset(notify_buckets) if notify_buckets is not None else None
        self._origin = origin or Origin()
        # kpipe's one S3 client, with its timeouts and retries, on the server behind.
        self._stat_client = minio_client(
            ObjectStoreSettings.model_validate(
                {
                    "MINIO_ENDPOINT": backend.endpoint,
                    "MINIO_ACCESS_KEY": credentials[0],
                    "MINIO_SECRET_KEY": credentials[1],
                    "MINIO_SECURE": False,
                }
            )
        )
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # The backend is on loopback: no connection limit, no decompression.
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in HEALTH_PATHS and scope["method"] in ("GET", "HEAD"):
            await _respond(send, 200, [(b"content-length", b"0")], b"")
            return
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.decode("latin-1") not in _HOP_BY_HOP
        }
        target = _creation(scope, headers)
        if target is not None and self._buckets is not None and target.bucket not in self._buckets:
            target = None
        path = scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        has_body = "content-length" in headers or any(
            k == b"transfer-encoding" for k, _ in scope["headers"]
        )
        try:
            async with self._client().request(
                scope["method"],
                # encoded: the path goes as it was signed (no re-quoting, no dot removal).
                URL(self._backend.url + path, encoded=True),
                headers=headers,
                data=_body(receive) if has_body else None,
                allow_redirects=False,
                skip_auto_headers=("Content-Type",),
            ) as response:
                out = [
                    (k, v)
                    for k, v in response.raw_headers
                    if k.decode("latin-1").lower() not in _HOP_BY_HOP
                ]
                if target is None:
                    await send(
                        {"type": "http.response.start", "status": response.status, "headers": out}
                    )
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    return
                body = await response.read()
                status = response.status
        except aiohttp.ClientError as exc:
            log.warning("object store backend failed on %s %s: %s", scope["method"], path, exc)
            await _respond(send, *_s3_error(503, "ServiceUnavailable", "storage backend failed"))
            return
        # CompleteMultipartUpload may answer 200 with an <Error> body.
        if status == 200 and b"<Error>" not in body[:512]:
            try:
                await asyncio.to_thread(self._make_durable, target, scope, headers)
            except Exception:
                # Not acknowledged, so the client retries the (idempotent) request.
                log.exception("could not make %s/%s durable", target.bucket, target.key)
                await _respond(send, *_s3_error(503, "ServiceUnavailable", "try again"))
                return
        await _respond(send, status, out, body)

    def _make_durable(self, target: _Creation, scope: Scope, headers: dict[str, str]) -> None:
        """fsync the new object and queue its notification (blocking; run in a thread)."""
        try:
            stat = self._stat_client.stat_object(target.bucket, target.key)
        except S3Error as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject"):
                raise  # not acknowledged: the client retries
            # Deleted by someone else since it was written: nothing to notify.
            log.warning("no notification for %s/%s: it is gone", target.bucket, target.key)
            return
        if not fsync_object(self._backend.object_path(target.bucket, target.key)):
            os.sync()  # the file has another name on disk: flush everything
        metadata = {str(k): str(v) for k, v in (stat.metadata or {}).items()}
        user_metadata = {
            "-".join(p.capitalize() for p in k.split("-")): v
            for k, v in metadata.items()
            if k.lower().startswith("x-amz-meta-")
        }
        modified = stat.last_modified or datetime.now(UTC)
        client = scope.get("client") or ("", 0)
        payload = notification_for(
            target.bucket,
            target.key,
            int(stat.size or 0),
            str(stat.etag or ""),
            stat.content_type or "application/octet-stream",
            target.event_name,
            version_id=stat.version_id if stat.version_id not in (None, "null") else None,
            user_metadata=user_metadata,
            mod_time_ns=int(modified.timestamp() * 1e9),
            origin=Origin(
                principal=_access_key(headers.get("authorization", "")) or self._origin.principal,
                source_host=str(client[0]),
                user_agent=headers.get("user-agent", ""),
                endpoint=self._origin.endpoint,
            ),
            event_time=datetime.now(UTC),
        )
        self._notifier.publish(payload)


def _access_key(authorization: str) -> str:
    """The access key of a SigV4 ``Authorization`` header (``Credential=AKID/...``)."""
    _, _, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if rest else ""


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (never all in memory)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
