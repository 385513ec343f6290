"""Fixtures of the kpipe package tests: ASGI apps on free ports, a real S3 server."""

from __future__ import annotations

from tests.eventing.conftest import serve  # noqa: F401
from tests.functions.conftest import raw_s3, s3_endpoint  # noqa: F401
