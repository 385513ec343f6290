"""Uploading local files to the object store, as ``kpipe run`` does."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from eventing.objectstore import http_pool, minio_client
from kpipe.core.settings import ObjectStoreSettings


def upload(path: Path, bucket: str, key: str, settings: ObjectStoreSettings | None = None) -> str:
    """Upload ``path`` to ``bucket/key`` and return the object's etag.

    The store is ``MINIO_ENDPOINT`` (``host:port`` or ``http(s)://host:port``)
    and its keys, read from the environment unless ``settings`` is given.
    """
    settings = settings or ObjectStoreSettings()
    # Each part of a multipart upload waits for the store to take 5 MiB or more.
    http = http_pool(settings, read_timeout_s=settings.timeout_s * 6)
    try:
        client = minio_client(settings, http)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        result = client.fput_object(bucket, key, str(path), content_type=content_type)
    finally:
        http.clear()
    return str(result.etag)
