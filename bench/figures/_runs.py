"""Driving runs through the stack: upload with a bounded window, wait, read timestamps."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._stack import BenchStack, timestamp

# How often a waiting worker asks the router about its run. Each GET costs the
# router about a millisecond of CPU, which the runs being measured compete for.
POLL_S = 0.05


def chain(
    name: str,
    prefix: str,
    suffix: str,
    steps: Sequence[tuple[str, dict[str, Any]]],
    fuse: bool = False,
) -> dict[str, Any]:
    """A pipeline spec: the (function, params) steps in a line, ``s0 -> s1 -> ...``."""
    return {
        "name": name,
        "trigger": {"bucket": "uploads", "prefix": prefix, "suffix": suffix},
        "output": {"bucket": "processed"},
        "fuse": fuse,
        "steps": [
            {"id": f"s{i}", "function": f, "params": p, **({"after": [f"s{i - 1}"]} if i else {})}
            for i, (f, p) in enumerate(steps)
        ],
    }


def drive(
    stack: BenchStack,
    pipeline: str,
    version: int,
    items: Sequence[tuple[str, bytes]],
    content_type: str,
    concurrency: int,
    closed: bool = True,
    timeout_s: float = 300.0,
) -> tuple[float, list[dict[str, Any]]]:
    """Upload ``items`` (key, bytes) and wait for their runs; (start time, run views).

    With ``closed``, each of ``concurrency`` workers uploads one item and waits
    for its run before the next (``concurrency`` runs in flight); otherwise the
    workers upload everything as fast as they can and the runs are awaited after.
    """
    queue = iter(items)
    lock = threading.Lock()
    runs: list[dict[str, Any]] = []
    ids: list[str] = []

    def worker() -> None:
        client = stack.minio()
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            key, data = item
            etag = stack.upload(client, key, data, content_type)
            run_id = stack.run_id(pipeline, version, key, etag)
            if closed:
                done = stack.wait_runs([run_id], timeout_s, poll_s=POLL_S)
                with lock:
                    runs.extend(done)
            else:
                with lock:
                    ids.append(run_id)

    started = time.time()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    if not closed:
        runs = stack.wait_runs(ids, timeout_s, poll_s=0.1)
    return started, runs


def finished(run: dict[str, Any]) -> float:
    """When the router recorded the run's end (seconds since the epoch)."""
    value = timestamp(run["finished_at"])
    if value is None:
        raise ValueError(f"run {run['id']} has no finished_at")
    return value


def throughput(started: float, runs: list[dict[str, Any]]) -> float:
    """Runs per second from ``started`` to the last run's end."""
    return len(runs) / (max(finished(r) for r in runs) - started)


def unique_keys(
    prefix: str, items: Sequence[tuple[str, bytes]], ext: str
) -> list[tuple[str, bytes]]:
    """``items`` under ``prefix`` with keys that are new on every call (a new run each time)."""
    stamp = next(_COUNTER)
    return [(f"{prefix}{stamp}-{name}{ext}", data) for name, data in items]


_COUNTER = itertools.count(int(time.time()))
