"""A Triton outage on the whole local stack is retried, not fatal, and bounded.

Triton is stopped with SIGSTOP on its process group: it keeps its port, the
kernel still accepts connections, but nothing answers (a hung or paused
server, the hardest case for a client). While it is stopped, an AI part
answers each delivery 503 after one short probe, and the broker redelivers
with backoff; once Triton is back, every run finishes once. With a short
``KPIPE_RETRY_FOR_S``, a Triton that stays down (or a model it does not
serve) fails the run, naming the model and Triton's URL, once that bound
has passed.

Only `kpipe up` and the helpers of tests/e2e/conftest.py are used, so these
tests hold whatever the stack's broker and object store are.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import psutil
import pytest

from tests.conftest import encode, wait_until
from tests.e2e.conftest import Stack, free_block, ports_at, start_stack, stop_stack

pytestmark = [pytest.mark.slow, pytest.mark.stack, pytest.mark.timeout(900)]

OUTAGE_S = 45.0
RUNS = 4
# The bound of the dedicated stack: short, so the failures come quickly.
RETRY_FOR_S = 8.0


def _pipeline(name: str, prefix: str, function: str) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"bucket": "uploads", "prefix": prefix},
        "output": {"bucket": "processed"},
        "steps": [{"id": "ai", "function": function}],
    }


def _triton_url(stack: Stack) -> str:
    return f"127.0.0.1:{stack.env['KPIPE_TRITON_HTTP_PORT']}"


def _triton_group(stack: Stack) -> int:
    """The process group of the stack's Triton (the launcher, tritonserver, its stubs)."""
    port = stack.env["KPIPE_TRITON_HTTP_PORT"]
    for proc in psutil.process_iter(["cmdline"]):
        words = proc.info["cmdline"] or []
        if "kpipe.local.triton.server" in words and port in words:
            group = os.getpgid(proc.pid)
            assert group != os.getpgrp(), "Triton shares the test's process group"
            return group
    raise AssertionError(f"no Triton process serves port {port}\n{stack.logs()}")


@contextmanager
def triton_stopped(stack: Stack) -> Iterator[None]:
    """Triton paused (SIGSTOP on its group) inside the block, resumed after it."""
    group = _triton_group(stack)
    os.killpg(group, signal.SIGSTOP)
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"http://{_triton_url(stack)}/v2/health/ready", timeout=1.0)
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def _part_log(stack: Stack, part: str) -> str:
    path = stack.home / "logs" / f"{part}.log"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def text_jpeg(text_page: npt.NDArray[np.uint8]) -> bytes:
    return encode(text_page, "JPEG", quality=90)


@pytest.fixture(scope="module")
def impatient_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose parts stop asking for redelivery after RETRY_FOR_S."""
    home = tmp_path_factory.mktemp("kpipe-impatient")
    env = {"KPIPE_RETRY_FOR_S": f"{RETRY_FOR_S:g}"}
    running = start_stack(home, ports_at(free_block(20)), env=env)
    yield running
    stop_stack(running)


def test_runs_that_arrive_while_triton_is_down_all_succeed_once_it_is_back(
    stack: Stack, text_jpeg: bytes
) -> None:
    stack.apply(_pipeline("outage", "outage/", "detect_text"))
    stack.upload("outage/warm.jpg", text_jpeg)
    assert stack.wait_run("outage", "outage/warm.jpg", timeout_s=120)["status"] == "succeeded"
    keys = [f"outage/run-{i}.jpg" for i in range(RUNS)]

    with triton_stopped(stack):
        stopped_at = time.monotonic()
        for key in keys:
            stack.upload(key, text_jpeg)
        wait_until(lambda: all(stack.runs_of("outage", k) for k in keys), timeout_s=30)
        wait_until(lambda: "answering 503" in _part_log(stack, "detect_text"), timeout_s=30)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        # 45 s in: nothing has failed, every run waits for Triton.
        during = {k: stack.runs_of("outage", k)[0]["status"] for k in keys}
        assert set(during.values()) <= {"pending", "running"}, during

    for key in keys:
        run = stack.wait_run("outage", key, timeout_s=240)
        assert run["status"] == "succeeded", run
        assert len(stack.runs_of("outage", key)) == 1
        [step] = run["steps"]
        assert (step["status"], step["attempt"]) == ("succeeded", 1)
        assert step["metadata"]["count"] > 0  # it found the page's text
        assert run["outputs"] == [{"bucket": "processed", "key": f"outage/{key}"}]
    made = stack.minio().list_objects("processed", prefix="outage/outage/run-", recursive=True)
    assert sorted(o.object_name for o in made) == sorted(f"outage/{k}" for k in keys)
    log = _part_log(stack, "detect_text")
    assert f"model text_detection not ready on Triton at {_triton_url(stack)}" in log
    wait_until(lambda: httpx.get(f"{stack.api}/healthz", timeout=5).status_code == 200, 60)


def test_a_model_triton_does_not_serve_fails_the_run_after_the_bound(
    impatient_stack: Stack, text_jpeg: bytes
) -> None:
    # No YOLO weights ship, so the stack's Triton does not serve yolov8n.
    stack = impatient_stack
    stack.apply(_pipeline("missing-model", "yolo/", "detect_objects"))
    stack.upload("yolo/page.jpg", text_jpeg)
    run = stack.wait_run("missing-model", "yolo/page.jpg", timeout_s=RETRY_FOR_S + 120)
    _assert_failed_naming_model_and_url(stack, run, "yolov8n")


def test_a_triton_that_stays_down_fails_the_run_after_the_bound(
    impatient_stack: Stack, text_jpeg: bytes
) -> None:
    stack = impatient_stack
    stack.apply(_pipeline("down", "down/", "detect_text"))
    with triton_stopped(stack):
        stack.upload("down/page.jpg", text_jpeg)
        run = stack.wait_run("down", "down/page.jpg", timeout_s=RETRY_FOR_S + 120)
    _assert_failed_naming_model_and_url(stack, run, "text_detection")
    assert "no answer within" in run["error"]["message"]


def _assert_failed_naming_model_and_url(stack: Stack, run: dict[str, Any], model: str) -> None:
    assert run["status"] == "failed", run
    error = run["error"]
    assert (error["code"], error["retryable"]) == ("model_not_ready", False)
    assert f"model {model} not ready on Triton at {_triton_url(stack)}" in error["message"]
    assert f"KPIPE_RETRY_FOR_S={RETRY_FOR_S:g}" in error["message"]
    # 503s until the request was RETRY_FOR_S old: the run cannot have failed sooner.
    assert run["duration_ms"] >= RETRY_FOR_S * 1000
    assert run["steps"][0]["attempt"] == 1
