"""Fixtures for the eventing tests: real HTTP servers on free ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The MinIO webhook samples in ``../shared`` next to the repository."""
    path = REPO_ROOT.parent / "shared" / "samples" / "minio-webhook"
    if not path.is_dir():
        pytest.fail(f"the shared samples are missing: expected {path} (../shared of the repo)")
    return path


@dataclass(frozen=True)
class Received:
    """One request the subscriber got."""

    headers: dict[str, str]
    body: bytes
    at: float


class Subscriber:
    """A real subscriber app: records requests, answers from a script.

    Request ``n`` gets ``script[n]`` (the last entry once the script runs out):
    a ``(status, body, headers)`` tuple, or a callable of the Received request
    that returns one.
    """

    def __init__(self, script: list[Any]) -> None:
        self.script = script or [(202, b"", {})]
        self.received: list[Received] = []
        self.url = ""
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            index = len(self.received)
            self.received.append(Received(dict(request.headers), body, time.monotonic()))
        answer = self.script[min(index, len(self.script) - 1)]
        if callable(answer):
            answer = answer(self.received[index])
        status, content, headers = answer
        return Response(content, status_code=status, headers=headers)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)


class ServerThread:
    """An ASGI app served by uvicorn in a thread on a loopback port."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def serve(free_port: Callable[[], int]) -> Iterator[Callable[..., str]]:
    """Serve ASGI apps for the test (on ``port``, or a free one); returns each base URL."""
    servers: list[ServerThread] = []

    def start(app: Any, port: int | None = None) -> str:
        server = ServerThread(app, port or free_port())
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def subscriber(serve: Callable[..., str]) -> Callable[..., Subscriber]:
    """Start a recording subscriber that answers with the scripted responses."""

    def start(*script: Any, path: str = "/", port: int | None = None) -> Subscriber:
        sub = Subscriber(list(script))
        sub.url = serve(sub.app, port) + path
        return sub

    return start


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(predicate, timeout_s=10)``: poll until true, else fail the test."""
    return wait_until
