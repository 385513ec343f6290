"""The local stack for the benchmark: started with the end-to-end tests' helpers.

It reuses ``start_stack``/``stop_stack`` from ``tests.e2e.conftest`` so the
benchmark runs exactly what ``kpipe up`` runs, on free ports, in a temporary
``KPIPE_HOME``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from minio import Minio

from router import keys
from tests.e2e.conftest import Stack, free_block, ports_at, start_stack, stop_stack

FINAL = ("succeeded", "failed")


def stack_ports() -> dict[str, int]:
    """A block of free loopback ports, laid out as the end-to-end tests lay them out."""
    return ports_at(free_block(20))


def timestamp(iso: str | None) -> float | None:
    """Seconds since the epoch of an ISO time from the REST API."""
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


@dataclass
class BenchStack:
    """A running stack plus the calls the figures make on it."""

    stack: Stack
    ports: dict[str, int]

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    @property
    def pid(self) -> int:
        return self.stack.process.pid

    @property
    def s3_endpoint(self) -> str:
        return self.stack.s3_endpoint

    @property
    def triton_url(self) -> str:
        return f"127.0.0.1:{self.ports['triton']}"

    def minio(self) -> Minio:
        return self.stack.minio()

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api, timeout=30)

    def apply(self, spec: dict[str, Any]) -> int:
        """Register a pipeline; its version."""
        with self.api() as api:
            response = api.put(f"/v1/pipelines/{spec['name']}", json=spec)
        response.raise_for_status()
        return int(response.json()["version"])

    def upload(self, client: Minio, key: str, data: bytes, content_type: str) -> str:
        """Put ``data`` into the uploads bucket; its etag."""
        result = client.put_object("uploads", key, io.BytesIO(data), len(data), content_type)
        return str(result.etag)

    @staticmethod
    def run_id(pipeline: str, version: int, key: str, etag: str) -> str:
        """The id the router gives the run of ``pipeline`` over ``uploads/key``."""
        return keys.run_id(pipeline, version, "uploads", key, etag.strip('"'))

    def wait_runs(
        self, run_ids: list[str], timeout_s: float, poll_s: float = 0.05
    ) -> list[dict[str, Any]]:
        """Poll until every run has finished; their REST views.

        Raises:
            TimeoutError: some run did not finish in time.
        """
        pending, done = list(run_ids), {}
        deadline = time.monotonic() + timeout_s
        with self.api() as api:
            while pending:
                for run_id in list(pending):
                    response = api.get(f"/v1/runs/{run_id}")
                    if response.status_code == 200 and response.json()["status"] in FINAL:
                        done[run_id] = response.json()
                        pending.remove(run_id)
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} runs unfinished, e.g. {pending[0]}")
                if pending:
                    time.sleep(poll_s)
        return [done[r] for r in run_ids]

    def broker_counters(self) -> dict[str, int]:
        """The local broker's ``GET /status`` counters."""
        url = f"http://127.0.0.1:{self.ports['broker']}/status"
        return dict(httpx.get(url, timeout=10).json()["counters"])


@contextmanager
def running_stack(home: Path) -> Iterator[BenchStack]:
    """Start ``kpipe up`` on free ports in ``home``; stop it (Ctrl-C) on the way out."""
    home.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        ports = stack_ports()
        try:
            stack = start_stack(home, ports, timeout_s=300.0)
            break
        except RuntimeError:
            # Another program on this shared machine may take a port between the
            # check and the bind ("Address already in use"): try a fresh block.
            if attempt == 2:
                raise
    try:
        yield BenchStack(stack, ports)
    finally:
        stop_stack(stack)
