"""The local stack for the benchmark: started with the end-to-end tests' helpers.

It reuses ``start_stack``/``stop_stack`` from ``tests.e2e.conftest`` so the
benchmark runs exactly what ``kpipe up`` runs, on free ports, in a temporary
``KPIPE_HOME``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from minio import Minio
from minio.error import S3Error
from prometheus_client.parser import text_string_to_metric_families

from eventing.signing import Role, SigningKey
from kpipe.local.config import PARTS, StackConfig
from kpipe.local.keys import ensure_keys
from router import keys
from tests.e2e.conftest import Stack, free_block, ports_at, start_stack, stop_stack

FINAL = ("succeeded", "failed")
# How often a waiting client asks the router about a run whose output it watches.
ROUTER_POLL_S = 1.0


def _exists(store: Minio | None, output: tuple[str, str]) -> bool:
    """Whether the object is in the store (a HEAD)."""
    if store is None:
        return False
    try:
        store.stat_object(*output)
    except S3Error:
        return False
    return True


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
    def home(self) -> Path:
        return self.stack.home

    @property
    def config(self) -> StackConfig:
        """The stack's ports and paths, as ``kpipe up`` read them from its env."""
        return StackConfig(**{k: v for k, v in self.env.items() if k.startswith("KPIPE_")})  # type: ignore[arg-type]

    @property
    def s3_endpoint(self) -> str:
        """The S3 front: uploads through it are notified (users and ``mc`` use it)."""
        return self.stack.s3_endpoint

    @property
    def s3_backend_endpoint(self) -> str:
        """rclone's own S3 endpoint, where the parts read and write (no notifications)."""
        return f"127.0.0.1:{self.ports['s3_backend']}"

    def backend_minio(self) -> Minio:
        """A client of :attr:`s3_backend_endpoint` (as the parts have)."""
        return Minio(self.s3_backend_endpoint, "minioadmin", "minioadmin", secure=False)

    def router_key(self) -> SigningKey:
        """The router's signing key, from the stack's ``KPIPE_HOME/keys`` (made by kpipe up)."""
        return ensure_keys(self.home)[Role.ROUTER]

    def part_url(self, part: str) -> str:
        """Where ``kpipe up`` serves the part (its functions-framework process)."""
        config = self.config
        return config.url(config.part_port(part), "/")

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
        self,
        run_ids: list[str],
        timeout_s: float,
        poll_s: float = 0.05,
        outputs: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until every run has finished; their REST views.

        A GET of a run costs the router a few ms of CPU, and the router's CPU
        is what the figures measure. So a run whose final output is known
        (``outputs``: run id -> bucket and key) is watched at rclone's S3 port
        (a HEAD, cheap for rclone) until the output is there -- the last part
        writes it before it replies -- and only then asked of the router; it
        is asked of the router every ``ROUTER_POLL_S`` too, so a failed run
        (which writes no output) is noticed. Runs are awaited in order.

        Raises:
            TimeoutError: some run did not finish in time.
        """
        pending, done = list(run_ids), {}
        watched = dict(outputs or {})
        store = self.backend_minio() if watched else None
        deadline = time.monotonic() + timeout_s
        asked = 0.0
        with self.api() as api:
            while pending:
                # In order, stopping at the first unfinished run: the others' end
                # times come from the router, so noticing them later costs nothing.
                run_id = pending[0]
                output = watched.get(run_id)
                due = time.monotonic() - asked >= ROUTER_POLL_S
                if output is not None and _exists(store, output):
                    del watched[run_id]  # written: the run ends within moments
                    output = None
                if output is None or due:
                    asked = time.monotonic()
                    response = api.get(f"/v1/runs/{run_id}")
                    if response.status_code == 200 and response.json()["status"] in FINAL:
                        done[run_id] = response.json()
                        pending.pop(0)
                        continue
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(pending)} runs unfinished, e.g. {run_id}")
                time.sleep(poll_s)
        return [done[r] for r in run_ids]

    def broker_counters(self) -> dict[str, int]:
        """The local broker's ``GET /status`` counters (the broker runs in the router's process)."""
        url = f"http://127.0.0.1:{self.ports['broker']}/status"
        return dict(httpx.get(url, timeout=10).json()["counters"])

    def part_metric(self, part: str, family: str) -> float | None:
        """The sum of a Prometheus family's samples on a part's ``/metrics`` (counters' _total).

        None when the part did not answer (busy past the timeout, or restarting).
        """
        try:
            text = httpx.get(f"{self.part_url(part)}metrics", timeout=30).text
        except httpx.HTTPError:
            return None
        total = 0.0
        for found in text_string_to_metric_families(text):
            if found.name == family:
                total += sum(s.value for s in found.samples if not s.name.endswith("_created"))
        return total

    def backlog(self) -> int:
        """Work still going on: deliveries the broker holds (queued, waiting to retry, in
        flight) plus steps running in a part (one the broker gave up waiting for, too)."""
        url = f"http://127.0.0.1:{self.ports['broker']}/status"
        triggers = httpx.get(url, timeout=10).json()["triggers"].values()
        held = sum(int(t["queued"]) + int(t["in_flight"]) for t in triggers)
        running = [self.part_metric(p, "kpipe_steps_in_flight") for p in PARTS]
        return held + sum(int(r) for r in running if r is not None)

    def settle(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> tuple[float, int]:
        """Wait until the stack has no work left, so one figure's work ends before the next's.

        Returns:
            How long it waited (s), and the work left then (0 unless it timed out).
        """
        started = time.monotonic()
        while (left := self.backlog()) and time.monotonic() - started < timeout_s:
            time.sleep(poll_s)
        return time.monotonic() - started, left

    def log_lines(self, component: str) -> list[str]:
        """The lines ``kpipe up`` has written to ``logs/<component>.log`` so far."""
        path = self.home / "logs" / f"{component}.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


# A busy shared machine can take minutes to load Triton's models.
START_TIMEOUT_S = 600.0


@contextmanager
def running_stack(home: Path) -> Iterator[BenchStack]:
    """Start ``kpipe up`` on free ports in ``home``; stop it (Ctrl-C) on the way out."""
    home.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        ports = stack_ports()
        try:
            stack = start_stack(home, ports, timeout_s=START_TIMEOUT_S)
            break
        except RuntimeError as exc:
            # Another program on this shared machine may take a port between the
            # check and the bind: try a fresh block. Anything else is not a race.
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise
    try:
        yield BenchStack(stack, ports)
    finally:
        stop_stack(stack)
