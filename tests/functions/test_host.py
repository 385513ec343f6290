"""functions/host.py: a part served without functions-framework, as ``kpipe up`` serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from functions.host import UnknownTarget, asgi_app, load_target
from tests.functions.apps import wait_for_health
from tests.functions.conftest import PARTS_KEY, ROUTER_KEY


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPIPE_SIGNING_KEY", PARTS_KEY.entry())
    monkeypatch.setenv("KPIPE_TRUSTED_KEYS", f"router={ROUTER_KEY.public_entry()}")


def test_a_part_answers_its_health_check() -> None:
    reply = TestClient(asgi_app("blur")).get("/")
    assert reply.status_code == 200
    assert reply.json() == {"function": "blur", "ready": True}


@pytest.mark.parametrize("path", ["/", "/any/path", "/metrics"])
def test_every_path_goes_to_the_function(path: str) -> None:
    seen: list[tuple[str, str]] = []

    async def function(request: Request) -> Response:
        seen.append((request.method, request.url.path))
        return Response(b"{}", 200, media_type="application/json")

    assert TestClient(asgi_app(function)).put(path).status_code == 200
    assert seen == [("PUT", path)]


@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_robots_and_favicon_are_404_as_in_functions_framework(path: str) -> None:
    reply = TestClient(asgi_app("resize")).get(path)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


def test_a_function_that_raises_is_a_json_500() -> None:
    async def function(request: Request) -> Response:
        raise RuntimeError("a bug")

    reply = TestClient(asgi_app(function), raise_server_exceptions=False).post("/")
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "internal"
    assert "a bug" not in reply.text


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(UnknownTarget, match="sharpen"):
        load_target("sharpen")


@pytest.mark.slow
def test_the_command_serves_a_part_without_loading_flask(free_port: Callable[[], int]) -> None:
    port = free_port()
    code = (
        "import runpy, sys, threading, os, time\n"
        "def watch():\n"
        "    time.sleep(0.5)\n"
        "    while True:\n"
        "        if 'resize' in sys.modules.get('functions.main', object()).__dict__:\n"
        "            print(sorted(m for m in ('flask', 'werkzeug', 'functions_framework',"
        " 'cv2', 'tritonclient') if m in sys.modules), flush=True)\n"
        "            return\n"
        "        time.sleep(0.05)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        "sys.argv = ['functions', '--target', 'resize', '--host', '127.0.0.1',"
        f" '--port', '{port}']\n"
        "runpy.run_module('functions', run_name='__main__')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        health = wait_for_health(port, process)
        assert health == {"function": "resize", "ready": True}
        assert process.stdout is not None
        # Not Flask, not functions-framework, and not the image stacks resize never uses.
        assert process.stdout.readline().strip() == "[]"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
