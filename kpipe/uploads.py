"""Uploading local files to the object store, as ``kpipe run`` does."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from minio import Minio

from kpipe.settings import ObjectStoreSettings


def upload(path: Path, bucket: str, key: str, settings: ObjectStoreSettings | None = None) -> str:
    """Upload ``path`` to ``bucket/key`` and return the object's etag."""
    settings = settings or ObjectStoreSettings()
    client = Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
    )
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    result = client.fput_object(bucket, key, str(path), content_type=content_type)
    return str(result.etag)
