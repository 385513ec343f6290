"""Fixtures of the reliability tests: the whole local stack, real subscribers, the catalogue."""

from __future__ import annotations

# The session stack of the end-to-end tests (`kpipe up` on free ports).
from tests.e2e.conftest import stack, stack_ports  # noqa: F401

# Real HTTP subscribers and servers on free ports.
from tests.eventing.conftest import http, serve, subscriber, wait_for  # noqa: F401

# The real parts catalogue, and a real S3 server with `uploads` and `processed`.
from tests.router.conftest import catalog, s3, spec_data  # noqa: F401
