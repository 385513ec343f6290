"""Fixtures of the kpipe package tests: ASGI apps served on free ports."""

from __future__ import annotations

from tests.eventing.conftest import serve  # noqa: F401
