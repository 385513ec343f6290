"""Fixtures of the kpipe package tests: ASGI apps on free ports and subscribers."""

from __future__ import annotations

from tests.eventing.conftest import http, samples_dir, serve, subscriber, wait_for  # noqa: F401
