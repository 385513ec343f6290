"""Driving runs through the stack: upload with a bounded window, wait, read timestamps."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench._stack import BenchStack, timestamp
from router import keys

# How often a waiting worker looks for its run (at the object store when it can:
# each GET of a run costs the router a few ms of CPU, which the runs compete for).
POLL_S = 0.05
OUTPUT_BUCKET = "processed"


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
        "output": {"bucket": OUTPUT_BUCKET},
        "fuse": fuse,
        "steps": [
            {"id": f"s{i}", "function": f, "params": p, **({"after": [f"s{i - 1}"]} if i else {})}
            for i, (f, p) in enumerate(steps)
        ],
    }


@dataclass(frozen=True)
class Driven:
    """What :func:`drive` did: when it began, the runs' REST views, and each upload's start.

    Attributes:
        started: the first upload's start (seconds since the epoch).
        runs: the finished runs, in the order they finished (closed) or were uploaded.
        uploaded_at: per run id, when its upload began (the client's clock).
    """

    started: float
    runs: list[dict[str, Any]]
    uploaded_at: dict[str, float]

    def chains(self) -> list[tuple[float, float]]:
        """(upload began, the router recorded the run's end) of each run."""
        return [(self.uploaded_at[r["id"]], finished(r)) for r in self.runs]

    def failed(self) -> list[str]:
        """The ids of the runs that did not succeed."""
        return [r["id"] for r in self.runs if r["status"] != "succeeded"]


def drive(
    stack: BenchStack,
    pipeline: str,
    version: int,
    items: Sequence[tuple[str, bytes]],
    content_type: str,
    concurrency: int,
    closed: bool = True,
    timeout_s: float = 300.0,
    watch: bool = False,
) -> Driven:
    """Upload ``items`` (key, bytes) and wait for their runs.

    With ``closed``, each of ``concurrency`` workers uploads one item and waits
    for its run before the next (``concurrency`` uploads in flight); otherwise the
    workers upload everything as fast as they can and the runs are awaited after.
    With ``watch``, each run is watched for at its final output,
    ``processed/<pipeline>/<key>``, which is right for a pipeline with one
    last step that keeps the format (see :meth:`BenchStack.wait_runs`).
    """
    queue = iter(items)
    lock = threading.Lock()
    runs: list[dict[str, Any]] = []
    ids: list[str] = []
    uploaded_at: dict[str, float] = {}
    outputs: dict[str, tuple[str, str]] = {}
    failed = threading.Event()  # once one worker fails, the others take no new item

    def worker() -> None:
        try:
            work()
        except BaseException:
            failed.set()
            raise

    def work() -> None:
        client = stack.minio()
        while not failed.is_set():
            with lock:
                item = next(queue, None)
            if item is None:
                return
            key, data = item
            began = time.time()
            etag = stack.upload(client, key, data, content_type)
            run_id = stack.run_id(pipeline, version, key, etag)
            mine = {run_id: (OUTPUT_BUCKET, keys.final_key(pipeline, key))} if watch else {}
            with lock:
                uploaded_at[run_id] = began
                outputs.update(mine)
            if closed:
                done = stack.wait_runs([run_id], timeout_s, poll_s=POLL_S, outputs=mine)
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
        runs = stack.wait_runs(ids, timeout_s, poll_s=0.1, outputs=outputs)
    return Driven(started, runs, uploaded_at)


def finished(run: dict[str, Any]) -> float:
    """When the router recorded the run's end (seconds since the epoch)."""
    value = timestamp(run["finished_at"])
    if value is None:
        raise ValueError(f"run {run['id']} has no finished_at")
    return value


def throughput(driven: Driven) -> float:
    """Runs per second from the first upload to the last run's end."""
    return len(driven.runs) / (max(finished(r) for r in driven.runs) - driven.started)


def unique_keys(
    prefix: str, items: Sequence[tuple[str, bytes]], ext: str
) -> list[tuple[str, bytes]]:
    """``items`` under ``prefix`` with keys that are new on every call (a new run each time)."""
    stamp = next(_COUNTER)
    return [(f"{prefix}{stamp}-{name}{ext}", data) for name, data in items]


_COUNTER = itertools.count(int(time.time()))
