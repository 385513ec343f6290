"""The object store: one protocol, the real S3 implementation (minio client), and its errors.

Every kpipe process that speaks S3 builds its client here
(:func:`minio_client`): the parts, the router, ``kpipe run``, ``kpipe models
push`` and the local store's gateway. The errors derive from the floor's
root, so a part's step and the router's reconciler read the same ``code`` and
``retryable``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.util.retry import Retry

from eventing.contract import ObjectCreated, ObjectRef
from kpipe.core.errors import KpipeError
from kpipe.core.settings import ObjectStoreSettings


class ObjectStoreError(KpipeError):
    """Root of the object store's errors."""

    code = "object_store_error"


class ObjectMissing(ObjectStoreError, LookupError):
    """An object is gone (deleted between its notification and its processing)."""

    code = "object_missing"

    def __init__(self, ref: object) -> None:
        super().__init__(f"{ref} does not exist")
        self.ref = ref


class StoreUnavailable(ObjectStoreError, ConnectionError):
    """The object store did not answer; the request may be tried again (the message names it)."""

    code = "store_unavailable"
    retryable = True


class SourceChanged(ObjectStoreError, LookupError):
    """The object is no longer the version a run was started for (a newer upload replaced it).

    Permanent: the run of the old version ends, and the new upload's own run
    does the work.
    """

    code = "source_changed"

    def __init__(self, ref: object, expected: str, found: str | None) -> None:
        now = f"is now {found}" if found else "has changed"
        super().__init__(f"{ref} {now}; the run was started for etag {expected}")
        self.ref = ref


class StoreRefused(ObjectStoreError, PermissionError):
    """The object store answered with a permanent error (credentials, policy, bad request)."""

    code = "store_refused"

    def __init__(self, ref: object, reason: str) -> None:
        super().__init__(f"object store refused {ref}: {reason}")
        self.ref = ref


class ObjectStore(Protocol):
    """Reads and writes whole objects."""

    def get(self, ref: ObjectRef, if_match: str | None = None) -> bytes:
        """The object's bytes; with ``if_match``, only that version (else SourceChanged).

        Raises ObjectMissing, SourceChanged or StoreUnavailable.
        """
        ...

    def etag(self, ref: ObjectRef) -> str:
        """The object's current etag. Raises ObjectMissing or StoreUnavailable."""
        ...

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> str:
        """Write (or overwrite) the object and return its etag. Raises StoreUnavailable."""
        ...

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        """Server-side copy. Raises ObjectMissing or StoreUnavailable."""
        ...


# S3 error codes that mean "the object (or its bucket) is not there".
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject"})
# Statuses the retry policy retries, then StoreUnavailable when they persist.
_TRANSIENT_STATUSES = (500, 502, 503, 504)


def store_retry(attempts: int = 3, backoff_s: float = 0.25) -> Retry:
    """The one retry policy of every object-store request.

    Retries connection errors, read timeouts and 5xx answers ``attempts``
    times with exponential backoff (0, 2x, 4x ``backoff_s``...). It ignores
    ``Retry-After`` so a step's worst-case time stays bounded.
    """
    return Retry(
        total=attempts,
        connect=attempts,
        read=attempts,
        status=attempts,
        other=0,
        redirect=0,
        backoff_factor=backoff_s,
        status_forcelist=_TRANSIENT_STATUSES,
        # All three S3 calls we make are idempotent: GET, and PUT of the same bytes.
        allowed_methods=frozenset({"GET", "HEAD", "PUT"}),
        respect_retry_after_header=False,
        # Hand the last 5xx answer to minio so its S3 error message is kept.
        raise_on_status=False,
    )


def _modified_within(modified: datetime | None, since: float | None, before: float | None) -> bool:
    if since is None and before is None:
        return True
    if modified is None:
        return False
    when = modified.timestamp()
    return (since is None or when >= since) and (before is None or when < before)


class MinioStore:
    """The object store on any S3-compatible server, through the ``minio`` client.

    Example:
        >>> from kpipe.core.settings import ObjectStoreSettings
        >>> with MinioStore(ObjectStoreSettings()) as store:  # doctest: +SKIP
        ...     data = store.get(ObjectRef("uploads", "cat.jpg"))
    """

    def __init__(
        self, settings: ObjectStoreSettings, *, attempts: int = 3, backoff_s: float = 0.25
    ) -> None:
        """Build the client; nothing is sent until the first call.

        Args:
            settings: Endpoint, credentials, region and timeout.
            attempts: Retries of a failing request (see :func:`store_retry`).
            backoff_s: Base of the exponential backoff between retries.
        """
        self._http = http_pool(settings, attempts=attempts, backoff_s=backoff_s)
        self.endpoint = split_endpoint(settings)[0]
        self._client = minio_client(settings, self._http)

    def get(self, ref: ObjectRef, if_match: str | None = None) -> bytes:
        """The object's bytes; with ``if_match``, only the version with that etag.

        The version is pinned twice: ``If-Match`` (S3 answers 412 for another
        version, sending no bytes) and the answer's own ``ETag``, for servers
        that ignore ``If-Match`` on GET.

        Raises:
            SourceChanged: the object is not the version ``if_match`` names.
            ObjectMissing, StoreUnavailable, StoreRefused: as the names say.
        """
        headers: dict[str, str | list[str] | tuple[str]] | None = (
            {"If-Match": f'"{if_match}"'} if if_match else None
        )
        with self._errors(ref, if_match):
            response = self._client.get_object(ref.bucket, ref.key, request_headers=headers)
            try:
                found = str(response.headers.get("ETag") or "").strip('"')
                if if_match and found != if_match:
                    raise SourceChanged(ref, if_match, found)
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def etag(self, ref: ObjectRef) -> str:
        """The object's current etag. Raises ObjectMissing, StoreUnavailable or StoreRefused."""
        with self._errors(ref):
            return str(self._client.stat_object(ref.bucket, ref.key).etag or "").strip('"')

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> str:
        """Write (or overwrite) the object and return its etag.

        Raises StoreUnavailable or StoreRefused.
        """
        return self.put_stream(ref, io.BytesIO(data), len(data), content_type)

    def put_stream(self, ref: ObjectRef, stream: BinaryIO, length: int, content_type: str) -> str:
        """Write ``length`` bytes read from ``stream``; the etag.

        The client reads the stream a part at a time (a multipart upload in
        parts of 5 MiB or more past the first part), so memory stays bounded.

        Raises StoreUnavailable or StoreRefused.
        """
        with self._errors(ref):
            result = self._client.put_object(
                ref.bucket, ref.key, stream, length, content_type=content_type
            )
        return str(result.etag or "").strip('"')

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        """Server-side copy of ``src`` to ``dst``; ``src`` is left as it is.

        Raises:
            ValueError: ``dst`` is ``src`` (that would rewrite the source).
            ObjectMissing, StoreUnavailable, StoreRefused: as for :meth:`get`.
        """
        if src == dst:
            raise ValueError(f"refusing to copy {src} onto itself")
        with self._errors(src):
            self._client.copy_object(dst.bucket, dst.key, CopySource(src.bucket, src.key))

    def list(
        self,
        bucket: str,
        prefix: str = "",
        modified_since: float | None = None,
        modified_before: float | None = None,
    ) -> Iterator[ObjectCreated]:
        """Every object under ``bucket/prefix``, as the notification of its upload would say.

        Args:
            modified_since, modified_before: only objects last modified in
                ``[since, before)``, as Unix times (S3 lists every key
                anyway; this spares the caller the rest).

        Raises:
            ObjectMissing: the bucket does not exist.
            StoreUnavailable, StoreRefused: as for :meth:`get`.
        """
        with self._errors(ObjectRef(bucket, prefix or "/")):
            for obj in self._client.list_objects(bucket, prefix=prefix, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                if not _modified_within(obj.last_modified, modified_since, modified_before):
                    continue
                yield ObjectCreated(
                    bucket=bucket,
                    key=obj.object_name,
                    size=int(obj.size or 0),
                    etag=(obj.etag or "").strip('"'),
                    content_type=obj.content_type or "application/octet-stream",
                )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.clear()

    def __enter__(self) -> MinioStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, ref: ObjectRef, if_match: str | None = None) -> Iterator[None]:
        """Turn minio and urllib3 failures into the errors of the protocol."""
        try:
            yield
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectMissing(ref) from None
            status = exc.response.status if exc.response is not None else 0
            if if_match and (status == 412 or exc.code == "PreconditionFailed"):
                raise SourceChanged(ref, if_match, None) from None
            if status >= 500:
                raise StoreUnavailable(f"{self.endpoint} failed on {ref}: {exc.code}") from exc
            raise StoreRefused(ref, f"{exc.code}: {exc.message}") from None
        except InvalidResponseError as exc:
            # An S3 error whose Content-Type is not application/xml (rclone
            # sends text/xml): the minio client does not read it, so read it here.
            status, code = _invalid_response(exc)
            if status == 404 or code in _MISSING_CODES:
                raise ObjectMissing(ref) from None
            if if_match and (status == 412 or code == "PreconditionFailed"):
                raise SourceChanged(ref, if_match, None) from None
            if 400 <= status < 500:
                raise StoreRefused(ref, code or f"HTTP {status}") from None
            raise StoreUnavailable(f"{self.endpoint} failed on {ref}: {code or status}") from exc
        except ServerError as exc:
            raise StoreUnavailable(f"{self.endpoint} failed on {ref}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"{self.endpoint} unreachable for {ref}: {exc}") from exc
        except ValueError as exc:
            # minio checks names before sending: a key with a "." or ".." segment
            # (valid in S3, but servers and proxies normalise such paths) is refused.
            raise StoreRefused(ref, str(exc)) from None


_ERROR_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _invalid_response(exc: InvalidResponseError) -> tuple[int, str | None]:
    """The HTTP status and S3 error code of an answer minio could not parse."""
    # Pickling's view of its fields is the only public one.
    status, _content_type, body = exc.__reduce__()[1]  # type: ignore[no-untyped-call]
    match = _ERROR_CODE.search(body or "")
    return int(status or 0), match.group(1) if match else None


def split_endpoint(settings: ObjectStoreSettings) -> tuple[str, bool]:
    """``(host:port, secure)`` of ``MINIO_ENDPOINT``, which may carry ``http(s)://``.

    Raises:
        ValueError: the endpoint has no host.

    Example:
        >>> split_endpoint(ObjectStoreSettings(MINIO_ENDPOINT="https://s3.example:9000"))
        ('s3.example:9000', True)
    """
    endpoint, secure = settings.endpoint, settings.secure
    parsed = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parsed.scheme:
        secure = parsed.scheme == "https"
    if not parsed.netloc:
        raise ValueError(f"object store endpoint {endpoint!r} has no host")
    return parsed.netloc, secure


# How much longer than MINIO_TIMEOUT_S a client of large files waits for each
# answer: each part of a multipart upload waits for the store to take 5 MiB or
# more, and model files run to hundreds of MB.
LARGE_FILE_TIMEOUT_FACTOR = 6


def http_pool(
    settings: ObjectStoreSettings,
    *,
    attempts: int = 3,
    backoff_s: float = 0.25,
    large_files: bool = False,
) -> urllib3.PoolManager:
    """The connection pool of an S3 client: explicit timeouts and :func:`store_retry`.

    Args:
        settings: ``MINIO_TIMEOUT_S`` is the connect and (by default) the read timeout.
        attempts: Retries of a failing request.
        backoff_s: Base of the exponential backoff between retries.
        large_files: Wait :data:`LARGE_FILE_TIMEOUT_FACTOR` times longer for
            each answer, for uploads of large files.
    """
    read_s = settings.timeout_s * (LARGE_FILE_TIMEOUT_FACTOR if large_files else 1)
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.timeout_s, read=read_s),
        retries=store_retry(attempts, backoff_s),
        maxsize=16,
        # The system CA store (SSL_CERT_FILE honoured) verifies https endpoints.
        cert_reqs="CERT_REQUIRED",
    )


def minio_client(settings: ObjectStoreSettings, http: urllib3.PoolManager | None = None) -> Minio:
    """The one way kpipe builds an S3 client: parts, ``kpipe run``, ``kpipe models push``.

    Args:
        settings: ``MINIO_ENDPOINT`` (``host:port`` or ``http(s)://host:port``),
            the keys, ``MINIO_SECURE``, ``MINIO_REGION`` and ``MINIO_TIMEOUT_S``.
        http: The connection pool, when the caller owns (and closes) it;
            by default :func:`http_pool` of ``settings``.

    Returns:
        A ``minio.Minio`` client; no request is sent yet.

    Raises:
        ValueError: the endpoint has no host.
    """
    endpoint, secure = split_endpoint(settings)
    # The region is given so minio never asks the server for it (one less call).
    return Minio(
        endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=secure,
        region=settings.region,
        http_client=http if http is not None else http_pool(settings),
    )
