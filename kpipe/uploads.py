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
    http = http_pool(settings, large_files=True)
    try:
        client = minio_client(settings, http)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        result = client.fput_object(bucket, key, str(path), content_type=content_type)
    finally:
        http.clear()
    return str(result.etag)
