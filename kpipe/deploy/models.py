"""Pushes a Triton model repository into an S3 bucket, where the cluster's Triton reads it.

Each ``<model>/`` directory that has a ``config.pbtxt`` is uploaded file by
file to ``<bucket>/<prefix><model>/<path>`` (``config.pbtxt``, ``labels.txt``,
``1/model.onnx`` ...). Weights are never in an image: this is how they reach
the cluster. With ``cpu=True`` every ``KIND_GPU`` instance group in a
``config.pbtxt`` is uploaded as ``KIND_CPU``, for a Triton without a GPU.

Example:
    $ kubectl -n kpipe port-forward svc/minio 9000 &
    $ MINIO_ENDPOINT=127.0.0.1:9000 MINIO_ACCESS_KEY=kpipe-root MINIO_SECRET_KEY=... \\
        kpipe models push --cpu
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kpipe.core.errors import KpipeError

if TYPE_CHECKING:
    from minio import Minio

    from kpipe.core.settings import ObjectStoreSettings

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "models"
_GPU_KIND = re.compile(r"\bKIND_GPU\b")
_SKIPPED_SUFFIXES = (".partial",)


class NoModels(KpipeError, FileNotFoundError):
    """The directory holds no model (no ``<model>/config.pbtxt``)."""

    def __init__(self, repository: Path) -> None:
        super().__init__(f"{repository}: no <model>/config.pbtxt found")
        self.repository = repository


@dataclass(frozen=True)
class Pushed:
    """One uploaded object: its key in the bucket and its size in bytes."""

    key: str
    size: int


def client_from_settings(settings: ObjectStoreSettings) -> Minio:
    """kpipe's S3 client (:func:`eventing.objectstore.minio_client`), with time for large files.

    Args:
        settings: the object store (``MINIO_ENDPOINT`` ...).

    Returns:
        The client (no request is sent yet).
    """
    from eventing.objectstore import http_pool, minio_client

    return minio_client(settings, http_pool(settings, large_files=True))


def model_files(repository: Path) -> dict[str, list[Path]]:
    """The files to push, by model name: every file under each model directory.

    Raises:
        NoModels: no ``<model>/config.pbtxt`` under ``repository``.
    """
    models = sorted(p.parent for p in repository.glob("*/config.pbtxt"))
    if not models:
        raise NoModels(repository)
    return {
        model.name: sorted(
            f
            for f in model.rglob("*")
            if f.is_file() and not f.name.startswith(".") and not f.name.endswith(_SKIPPED_SUFFIXES)
        )
        for model in models
    }


def push_models(
    client: Minio,
    repository: Path,
    bucket: str = DEFAULT_BUCKET,
    prefix: str = "",
    cpu: bool = False,
) -> list[Pushed]:
    """Upload every model of ``repository`` to ``bucket`` (created when missing).

    Args:
        client: a ``minio.Minio`` client for the S3-compatible store.
        repository: a Triton model repository (``<model>/config.pbtxt`` ...).
        bucket: the bucket Triton's ``--model-repository=s3://...`` points at.
        prefix: a key prefix inside the bucket (``""``: models at the root).
        cpu: rewrite ``KIND_GPU`` instance groups to ``KIND_CPU``.

    Returns:
        The uploaded objects, in upload order.

    Raises:
        NoModels: the repository holds no model.
        minio.error.S3Error: the store refused a request.
    """
    files = model_files(repository)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    pushed: list[Pushed] = []
    for model, paths in files.items():
        if not any(p.relative_to(repository / model).parts[0].isdigit() for p in paths):
            log.warning("%s has no version directory with weights; Triton will not load it", model)
        for path in paths:
            data = path.read_bytes()
            if cpu and path.name == "config.pbtxt":
                data = _GPU_KIND.sub("KIND_CPU", data.decode()).encode()
            key = f"{prefix}{model}/{path.relative_to(repository / model).as_posix()}"
            client.put_object(bucket, key, io.BytesIO(data), len(data))
            pushed.append(Pushed(key, len(data)))
    return pushed
