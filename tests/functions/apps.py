"""A part as functions-framework serves it, in-process: its ASGI app behind a test client."""

from __future__ import annotations

from pathlib import Path

import functions_framework.aio
from starlette.testclient import TestClient

import functions

# The functions-framework source file of every part (what the manifests run).
MAIN = str(Path(functions.__file__).parent / "main.py")


def part_client(target: str) -> TestClient:
    """``functions-framework --asgi --target <target>``'s app, behind a test client.

    The part reads its configuration (keys, object store) from the environment
    on its first request, so set it before the first call.
    """
    return TestClient(functions_framework.aio.create_asgi_app(target=target, source=MAIN))
