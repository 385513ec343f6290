"""What the front asks of the objects behind it: their state, and a new one made durable.

Blocking calls (kpipe's one S3 client on rclone, fsync, SQLite): the front
runs them in a thread.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from minio.error import S3Error

from eventing.notifications import Origin, notification_for
from eventing.objectstore import minio_client
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3._conditions import Current
from kpipe.local.s3._errors import S3Refusal
from kpipe.local.s3._notify import WebhookNotifier
from kpipe.local.s3._rclone import fsync_object
from kpipe.local.s3._request import Creation

log = logging.getLogger(__name__)

_MISSING = ("NoSuchKey", "NoSuchObject")


class Backend(Protocol):
    """The S3 server behind the front."""

    @property
    def url(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def object_path(self, bucket: str, key: str) -> Path: ...


@dataclass(frozen=True)
class Found:
    """An object's ETag and date, and its size."""

    current: Current
    size: int


class Durability:
    """Reads objects' state from rclone and makes a new object durable and notified.

    Args:
        backend: the S3 server behind the front.
        notifier: the durable webhook queue.
        credentials: the access key the front reads with.
        origin: the server identity put in notifications.
    """

    def __init__(
        self,
        backend: Backend,
        notifier: WebhookNotifier,
        credentials: tuple[str, str],
        origin: Origin,
    ) -> None:
        self._backend = backend
        self._notifier = notifier
        self._origin = origin
        # kpipe's one S3 client, with its timeouts and retries, on the server behind.
        self._client = minio_client(
            ObjectStoreSettings.model_validate(
                {
                    "MINIO_ENDPOINT": backend.endpoint,
                    "MINIO_ACCESS_KEY": credentials[0],
                    "MINIO_SECRET_KEY": credentials[1],
                    "MINIO_SECURE": False,
                }
            )
        )

    def stat(self, bucket: str, key: str) -> Found | None:
        """The object's state, or None when there is none."""
        try:
            stat = self._client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        modified = stat.last_modified or datetime.now(UTC)
        return Found(Current(str(stat.etag or ""), modified), int(stat.size or 0))

    def current(self, bucket: str, key: str) -> Current | None:
        found = self.stat(bucket, key)
        return None if found is None else found.current

    def has_prefix(self, bucket: str, prefix: str) -> bool:
        """Whether any object's key starts with ``prefix``."""
        return any(True for _ in self._client.list_objects(bucket, prefix=prefix, recursive=True))

    def check_path(self, bucket: str, key: str) -> None:
        """Refuse a key that is a folder on disk, or under a key that is a file.

        rclone keeps objects as files, so ``a`` and ``a/b`` cannot both be; it
        answers 500 and then lists the folder as a file until it restarts.

        Raises:
            S3Refusal: MinIO's codes for the two cases.
        """
        path = self._backend.object_path(bucket, key)
        if path.is_dir():
            raise S3Refusal(
                409, "XMinioObjectExistsAsDirectory", "Object name already exists as a directory."
            )
        root = self._backend.object_path(bucket, "")
        for parent in path.parents:
            if parent == root or root not in parent.parents:
                return
            if parent.is_file():
                raise S3Refusal(
                    400,
                    "XMinioParentIsObject",
                    "Object-prefix is already an object, "
                    "please choose a different object-prefix name.",
                )

    def make(self, target: Creation, scope: Any, headers: dict[str, str]) -> None:
        """fsync the new object and queue its notification."""
        try:
            stat = self._client.stat_object(target.bucket, target.key)
        except S3Error as exc:
            if exc.code not in _MISSING:
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
