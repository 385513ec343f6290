"""kpipe's S3 front: a gateway over the object store that acknowledges uploads durably.

Most requests are forwarded unchanged (their SigV4 signature, header bytes
included) to the S3 server behind (``rclone serve s3``), and its answer
streamed back; a ranged GET's answer is made S3's (206, no whole-object
checksum). For a request that creates an object in a bucket with
notifications -- PutObject, CopyObject, CompleteMultipartUpload and a form
upload (POST Object) -- the front holds the answer until the object's file and
directory are fsynced and MinIO's webhook notification for it is in the
durable queue (:mod:`kpipe.local.s3._notify`), then answers. So an upload that
got its 200 is on disk and will be notified, at least once, whatever happens
next: MinIO's behaviour with a ``queue_dir``.

What rclone lacks the front does itself, after checking the signature
(:mod:`kpipe.local.s3._sigv4`), sending rclone requests signed with its own
key: UploadPartCopy, POST Object, V2-signed requests, conditional writes and
copies, folder-marker keys (``photos/``: accepted, never a file), and CORS.

Example:
    >>> front = S3Front(backend, notifier, ("minioadmin", "minioadmin"))  # doctest: +SKIP
    >>> uvicorn.run(front, port=9000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime

import aiohttp
from minio.error import S3Error
from yarl import URL

from eventing.notifications import Origin
from kpipe.local.s3._asgi import Receive, Scope, Send, adding, request_body, respond
from kpipe.local.s3._conditions import check_copy_source, check_read, check_write
from kpipe.local.s3._cors import CorsPolicy
from kpipe.local.s3._durable import Backend, Durability
from kpipe.local.s3._errors import S3Refusal, s3_error
from kpipe.local.s3._notify import WebhookNotifier
from kpipe.local.s3._post import check_form, post_answer, read_form
from kpipe.local.s3._rclone_client import RcloneClient, end_to_end
from kpipe.local.s3._request import (
    COPY_CONDITIONS,
    Creation,
    S3Call,
    copy_range,
    decode_headers,
)
from kpipe.local.s3._sigv4 import verify

log = logging.getLogger(__name__)

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

HEALTH_PATHS = frozenset({"/minio/health/live", "/minio/health/ready"})
EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
# Completions acknowledged by rclone but not by the front (kept for the client's retry).
_PENDING_COMPLETIONS = 1024
_V2_PARAMS = frozenset({"AWSAccessKeyId", "Signature", "Expires"})

__all__ = ["HEALTH_PATHS", "Backend", "S3Front"]


class S3Front:
    """The ASGI app of the front.

    Args:
        backend: the S3 server every request goes to.
        notifier: the durable webhook queue.
        credentials: the access key clients sign with; the front signs with it too.
        notify_buckets: buckets whose new objects are notified; None: all.
        origin: the server identity put in notifications.
        cors_origins: the origins browsers may call from (``*``: all).
        region: the region the front signs its own requests for.
    """

    def __init__(
        self,
        backend: Backend,
        notifier: WebhookNotifier,
        credentials: tuple[str, str],
        notify_buckets: Iterable[str] | None = None,
        origin: Origin | None = None,
        cors_origins: Iterable[str] = ("*",),
        region: str = "us-east-1",
    ) -> None:
        self._backend = backend
        self._buckets = frozenset(notify_buckets) if notify_buckets is not None else None
        self._secrets = {credentials[0]: credentials[1]}
        self._cors = CorsPolicy(cors_origins)
        self._durable = Durability(backend, notifier, credentials, origin or Origin())
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._pending: OrderedDict[str, tuple[Creation, Answer]] = OrderedDict()
        self._rclone = RcloneClient(backend, credentials, region)

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
        await self._rclone.aclose()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in HEALTH_PATHS and scope["method"] in ("GET", "HEAD"):
            await respond(send, 200, [(b"content-length", b"0")], b"")
            return
        try:
            headers = decode_headers(scope["headers"])
        except S3Refusal as refusal:
            await respond(send, *refusal.answer())
            return
        origin = headers.get("origin", "")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            asked = headers.get("access-control-request-headers", "")
            allowed = self._cors.preflight(origin, asked)
            if allowed is None:
                await respond(send, *s3_error(403, "AccessForbidden", "CORS is not allowed"))
            else:
                await respond(send, 200, [*allowed, (b"content-length", b"0")], b"")
            return
        send = adding(send, self._cors.headers(origin))
        call = S3Call.from_scope(scope, headers)
        try:
            await self._dispatch(call, scope, receive, send)
        except S3Refusal as refusal:
            status, out, body = refusal.answer()
            if call.has_body:
                # Its body may be unread (or never sent, after Expect: 100-continue).
                out = [*out, (b"connection", b"close")]
            await respond(send, status, out, body)
        except S3Error as exc:  # rclone's answer to one of the front's own requests
            code = exc.response.status if exc.response is not None else 503
            status = code if 400 <= code < 500 else 503
            await respond(
                send,
                *s3_error(
                    status, exc.code or "ServiceUnavailable", exc.message or "the store refused"
                ),
            )
        except aiohttp.ClientError as exc:
            log.warning("object store backend failed on %s %s: %s", call.method, call.raw_path, exc)
            await respond(send, *s3_error(503, "ServiceUnavailable", "storage backend failed"))

    async def _dispatch(self, call: S3Call, scope: Scope, receive: Receive, send: Send) -> None:
        if call.is_post_object:
            await respond(send, *await self._post_object(call, scope, receive))
            return
        if call.key.endswith("/"):
            self._verify(call)
            await respond(send, *await self._folder(call))
            return
        if call.is_upload_part_copy:
            self._verify(call)
            await respond(send, *await self._upload_part_copy(call, receive))
            return
        if call.key and (call.creation() is not None or "uploads" in call.params):
            self._durable.check_path(call.bucket, call.key)
        target = self._notified(call.creation())
        if target is not None and target.event_name.endswith("CompleteMultipartUpload"):
            pending = self._pending.get(call.params["uploadId"])
            if pending is not None:
                self._verify(call)
                await respond(send, *await self._finish(pending[0], scope, call, pending[1]))
                return
        resign = call.signed_v2
        conditional = self._conditional(call)
        if resign or conditional:
            self._verify(call)
        if conditional:
            # One conditional request at a time per key: its condition holds until it is done.
            # (Not every upload: a client may start a second one inside the first.)
            async with self._lock(call.bucket, call.key):
                await self._preconditions(call)
                await self._forward(call, scope, receive, send, target, resign)
            return
        await self._forward(call, scope, receive, send, target, resign)

    def _verify(self, call: S3Call) -> str:
        return verify(call.signed, self._secrets, datetime.now(UTC))

    def _notified(self, creation: Creation | None) -> Creation | None:
        if creation is None or (self._buckets is not None and creation.bucket not in self._buckets):
            return None
        return creation

    def _lock(self, bucket: str, key: str) -> asyncio.Lock:
        lock = self._locks.get((bucket, key))
        if lock is None:
            if len(self._locks) > 4096:  # forget the free ones
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[(bucket, key)] = asyncio.Lock()
        return lock

    def _conditional(self, call: S3Call) -> bool:
        if call.method in ("GET", "HEAD") and call.key:
            # rclone answers If-None-Match itself, and none of the others.
            names = ("if-match", "if-unmodified-since", "if-modified-since")
            return any(h in call.headers for h in names)
        if call.method != "PUT" or call.creation() is None:
            return False
        if "x-amz-copy-source" in call.headers:
            return True  # a copy to itself is checked too
        return "if-match" in call.headers or "if-none-match" in call.headers

    async def _preconditions(self, call: S3Call) -> None:
        """Check the request's conditions against the objects there now (S3Refusal if not met)."""
        headers = call.headers
        if call.method in ("GET", "HEAD"):
            current = await asyncio.to_thread(self._durable.current, call.bucket, call.key)
            if current is not None:
                check_read(headers, current)
            return
        source = call.copy_source
        replacing = headers.get("x-amz-metadata-directive", "").upper() == "REPLACE"
        if source == (call.bucket, call.key) and not replacing:
            raise S3Refusal(
                400,
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata.",
            )
        if source is not None and any(h in headers for h in COPY_CONDITIONS):
            found = await asyncio.to_thread(self._durable.current, *source)
            if found is None:
                raise S3Refusal(404, "NoSuchKey", "The specified key does not exist.")
            check_copy_source(headers, found)
        if "if-match" in headers or "if-none-match" in headers:
            there = await asyncio.to_thread(self._durable.current, call.bucket, call.key)
            check_write(headers, there)

    async def _forward(
        self,
        call: S3Call,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: Creation | None,
        resign: bool,
    ) -> None:
        headers, query = call.headers, call.query_string
        if resign:
            # Checked here: rclone gets it signed with V4 by the front.
            pairs = [p for p in query.split("&") if p.partition("=")[0] not in _V2_PARAMS]
            query = "&".join(pairs)
            kept = {k: v for k, v in headers.items() if k not in ("authorization", "host")}
            headers = self._rclone.sign(call.method, call.raw_path, query, kept)
        path = call.raw_path + ("?" + query if query else "")
        try:
            async with self._rclone.session.request(
                call.method,
                # encoded: the path goes as it was signed (no re-quoting, no dot removal).
                URL(self._backend.url + path, encoded=True),
                headers=headers,
                data=request_body(receive)
                if call.has_body or "content-length" in headers
                else None,
                allow_redirects=False,
                skip_auto_headers=("Content-Type",),
            ) as response:
                status, out = response.status, end_to_end(response.raw_headers)
                if call.method == "GET" and ("range" in call.headers or status == 304):
                    status, out = _ranged(status, out)
                if target is None:
                    await send({"type": "http.response.start", "status": status, "headers": out})
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    return
                body = await response.read()
        except aiohttp.ClientError as exc:
            log.warning("object store backend failed on %s %s: %s", call.method, path, exc)
            await respond(send, *s3_error(503, "ServiceUnavailable", "storage backend failed"))
            return
        await respond(send, *await self._finish(target, scope, call, (status, out, body)))

    async def _finish(self, target: Creation, scope: Scope, call: S3Call, answer: Answer) -> Answer:
        """Make a created object durable and notified, then its answer; a 503 if that fails."""
        status, _, body = answer
        # CompleteMultipartUpload may answer 200 with an <Error> body.
        if status != 200 or b"<Error>" in body[:512]:
            return answer
        upload = call.params.get("uploadId") if "Complete" in target.event_name else None
        try:
            await asyncio.to_thread(self._durable.make, target, scope, call.headers)
        except Exception:
            # Not acknowledged, so the client retries the (idempotent) request.
            log.exception("could not make %s/%s durable", target.bucket, target.key)
            if upload is not None:
                # rclone has completed it: the retry would be NoSuchUpload, never notified.
                self._pending[upload] = (target, answer)
                while len(self._pending) > _PENDING_COMPLETIONS:
                    self._pending.popitem(last=False)
            return s3_error(503, "ServiceUnavailable", "try again")
        if upload is not None:
            self._pending.pop(upload, None)
        return answer

    async def _folder(self, call: S3Call) -> Answer:
        """A folder-marker key (``photos/``): a folder on disk, never a file that blocks it."""
        empty = [(b"etag", EMPTY_ETAG.encode()), (b"content-length", b"0")]
        if call.method == "PUT" and not call.params and "x-amz-copy-source" not in call.headers:
            if call.has_body:
                raise S3Refusal(400, "InvalidArgument", "a key ending in / must be empty here")
            return 200, empty, b""
        if call.method == "DELETE" and not call.params:
            return 204, [], b""  # the objects in it stay, as in S3
        if call.method in ("GET", "HEAD") and not call.params:
            if await asyncio.to_thread(self._durable.has_prefix, call.bucket, call.key):
                return 200, [*empty, (b"content-type", b"application/x-directory")], b""
            raise S3Refusal(404, "NoSuchKey", "The specified key does not exist.")
        raise S3Refusal(400, "InvalidArgument", "a key ending in / is a folder marker here")

    async def _upload_part_copy(self, call: S3Call, receive: Receive) -> Answer:
        """UploadPartCopy: the source's bytes (or range) streamed into an UploadPart."""
        source = call.copy_source
        if source is None:
            raise S3Refusal(400, "InvalidArgument", "x-amz-copy-source is missing")
        found = await asyncio.to_thread(self._durable.stat, *source)
        if found is None:
            raise S3Refusal(404, "NoSuchKey", "The specified key does not exist.")
        check_copy_source(call.headers, found.current)
        first, last = copy_range(call.headers.get("x-amz-copy-source-range"), found.size)
        async for _ in request_body(receive):
            pass  # an UploadPartCopy has no body
        return await self._rclone.copy_part(call.raw_path, call.query_string, source, first, last)

    async def _post_object(self, call: S3Call, scope: Scope, receive: Receive) -> Answer:
        """A browser form upload: checked against its policy, stored, notified as ``Post``."""
        form = await read_form(call.headers["content-type"], request_body(receive))
        try:
            check_form(form, call.bucket, self._secrets, datetime.now(UTC))
            key = form.key
            if not key or key.endswith("/"):
                raise S3Refusal(400, "InvalidArgument", "the form's key is empty or a folder")
            self._durable.check_path(call.bucket, key)
            status, out, body = await self._rclone.put_form_file(call.bucket, key, form)
            if status != 200:
                return status, out, body
            target = self._notified(Creation("s3:ObjectCreated:Post", call.bucket, key))
            if target is not None:
                finished = await self._finish(target, scope, call, (status, out, body))
                if finished[0] != 200:
                    return finished
        finally:
            form.close()
        etag = next((v for k, v in out if k.lower() == b"etag"), b"")
        return post_answer(form, call.bucket, key, etag, self._backend.url)


def _ranged(status: int, out: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    """S3's answer to a ranged or conditional GET: 206, and no checksum of the whole object.

    rclone answers 200 with the range and the whole object's checksum, which
    boto3 checks against the range (FlexibleChecksumError), and sends that
    checksum on a 304 too, whose empty body boto3 then fails to read.
    """
    kept = [(k, v) for k, v in out if not k.lower().startswith(b"x-amz-checksum")]
    ranged = any(k.lower() == b"content-range" for k, _ in out)
    return (206 if status == 200 and ranged else status), kept
