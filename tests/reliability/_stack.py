"""Helpers to drive the whole local stack: apply, upload, wait for runs, read counters."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Stack


def one_step(name: str, prefix: str, step: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline of one step over ``uploads/<prefix>``, output to ``processed``."""
    return {
        "name": name,
        "trigger": {"bucket": "uploads", "prefix": prefix},
        "output": {"bucket": "processed"},
        "steps": [dict(step)],
    }


def broker_url(stack: Stack, path: str = "") -> str:
    return f"http://127.0.0.1:{stack.env['KPIPE_BROKER_PORT']}{path}"


def broker_status(stack: Stack) -> dict[str, Any]:
    return dict(httpx.get(broker_url(stack, "/status"), timeout=5).json())


def counters(stack: Stack) -> dict[str, int]:
    return {k: int(v) for k, v in broker_status(stack)["counters"].items()}


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}


def wait_counters(
    stack: Stack, before: Mapping[str, int], at_least: Mapping[str, int], timeout_s: float = 10
) -> dict[str, int]:
    """The counter changes since ``before``, once each in ``at_least`` reached its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        change = delta(before, counters(stack))
        if all(change.get(k, 0) >= v for k, v in at_least.items()):
            return change
        if time.monotonic() > deadline:
            raise AssertionError(f"broker counters changed by {change}, wanted {dict(at_least)}")
        time.sleep(0.05)


def healthy(stack: Stack) -> dict[str, Any]:
    with stack.client() as api:
        response = api.get("/healthz")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_healthy(stack: Stack, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{stack.api}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the stack is not healthy\n{stack.logs()}")
        time.sleep(0.2)


def part_group(stack: Stack, name: str) -> int:
    """The process group of the part ``name`` that `kpipe up` started (its own session)."""
    from kpipe.local.config import PARTS

    port = str(int(stack.env["KPIPE_PARTS_PORT"]) + 1 + PARTS.index(name))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if words[1:4] == ["-m", "functions", "--target"] and port in words:
            return os.getpgid(int(proc.name))
    raise AssertionError(f"no process serves part {name} on port {port}")
