"""A part as functions-framework serves it, in-process: its ASGI app behind a test client."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

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


def wait_for_health(port: int, process: subprocess.Popen[Any], timeout_s: float = 30) -> Any:
    """The health document of the part ``process`` serves on ``port``, once it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                return json.load(answer)
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.1)
