"""The whole local stack (`kpipe up`) on free ports, shared by the end-to-end tests."""

from __future__ import annotations

import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio

REPO = Path(__file__).resolve().parents[2]


def _port_free(port: int) -> bool:
    """Whether a server could bind ``port`` on loopback now (as uvicorn and gunicorn do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_ports() -> range:
    """The ports the kernel gives client sockets (Linux's ip_local_port_range)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports.

    The block lies below the ephemeral range, so no client socket of the
    tests (or of a stack already running) can take one of its ports between
    choosing it here and a component of the stack binding it.
    """
    top = min(_ephemeral_ports().start, 65536) - size
    for _ in range(200):
        base = random.randint(min(10000, top - 1), top - 1)
        if all(_port_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


@dataclass
class Stack:
    """A running `kpipe up` and how to reach it."""

    home: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    api: str
    s3_endpoint: str

    def minio(self) -> Minio:
        return Minio(self.s3_endpoint, "minioadmin", "minioadmin", secure=False)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=10)

    def apply(self, spec: Mapping[str, Any]) -> None:
        """Register (a new version of) a pipeline; fails the test if refused."""
        with self.client() as api:
            response = api.put(f"/v1/pipelines/{spec['name']}", json=dict(spec))
        assert response.status_code == 200, response.text

    def upload(
        self, key: str, data: bytes, content_type: str = "image/jpeg", bucket: str = "uploads"
    ) -> str:
        """Upload with the minio client, as a user would; returns the etag."""
        result = self.minio().put_object(
            bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )
        return str(result.etag)

    def read(self, bucket: str, key: str) -> bytes:
        response = self.minio().get_object(bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def runs_of(self, pipeline: str, key: str, bucket: str = "uploads") -> list[dict[str, Any]]:
        """The runs of ``pipeline`` over ``<bucket>/<key>``, newest first."""
        with self.client() as api:
            response = api.get(
                "/v1/runs", params={"pipeline": pipeline, "source": f"{bucket}/{key}"}
            )
        response.raise_for_status()
        return list(response.json()["runs"])

    def wait_run(
        self, pipeline: str, key: str, timeout_s: float = 60.0, bucket: str = "uploads"
    ) -> dict[str, Any]:
        """The newest run of ``pipeline`` over ``<bucket>/<key>``, once it has finished."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.runs_of(pipeline, key, bucket)
            if runs and runs[0]["status"] in ("succeeded", "failed"):
                return runs[0]
            time.sleep(0.1)
        raise AssertionError(f"no finished run of {pipeline} for {key}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.home / "logs").glob("*.log")):
            parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)


def stack_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment `kpipe up` runs with: its home and every port from ``ports``."""
    return {
        **os.environ,
        "KPIPE_HOME": str(home),
        "KPIPE_ROUTER_PORT": str(ports["router"]),
        "KPIPE_S3_PORT": str(ports["s3"]),
        "KPIPE_S3_BACKEND_PORT": str(ports["s3_backend"]),
        "KPIPE_TRITON_HTTP_PORT": str(ports["triton"]),
        "KPIPE_TRITON_GRPC_PORT": str(ports["triton"] + 1),
        "KPIPE_TRITON_METRICS_PORT": str(ports["triton"] + 2),
        "KPIPE_BROKER_PORT": str(ports["broker"]),
        "KPIPE_ADAPTER_PORT": str(ports["adapter"]),
        "KPIPE_PARTS_PORT": str(ports["parts"]),
        # keep the redelivery schedule short so failures show quickly
        "KPIPE_SWEEP_INTERVAL_S": "2",
    }


def start_stack(
    home: Path,
    ports: dict[str, int],
    timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Stack:
    """`kpipe up` on ``ports``, once healthy; ``env`` adds to (or overrides) its environment."""
    env = {**stack_env(home, ports), **(env or {})}
    with (home / "up.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kpipe.cli", "up"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(
        home, process, env, f"http://127.0.0.1:{ports['router']}", f"127.0.0.1:{ports['s3']}"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kpipe up exited with {process.returncode}\n{stack.logs()}")
        try:
            if httpx.get(f"{stack.api}/healthz", timeout=2).status_code == 200:
                return stack
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_stack(stack)
    raise RuntimeError(f"the stack was not healthy in {timeout_s} s\n{stack.logs()}")


def stop_stack(stack: Stack) -> int:
    """Ctrl-C, as a user would; returns the exit code."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait()
    return stack.process.returncode


def ports_at(base: int) -> dict[str, int]:
    """The stack's ports in a block of 20 from ``base`` (Triton takes 3, the parts 9)."""
    return {
        "router": base,
        "s3": base + 1,
        "broker": base + 2,
        "adapter": base + 3,
        "triton": base + 4,
        "s3_backend": base + 7,
        "parts": base + 8,
    }


@pytest.fixture(scope="session")
def stack_ports() -> dict[str, int]:
    return ports_at(free_block(20))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_ports: dict[str, int]) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("kpipe-home")
    running = start_stack(home, stack_ports)
    yield running
    stop_stack(running)
