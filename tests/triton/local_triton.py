"""Start and stop ``python -m kpipe.local.triton.server`` in a subprocess on free ports."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2] / "triton" / "models"
# The four models load in parallel, each in its own python-backend stub, in a
# few seconds; a busy 2-core machine that also runs other tests takes longer.
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LocalTriton:
    """A launcher subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    http_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def wait_ready(self, models: list[str]) -> float:
        """Wait for /v2/health/ready and each model's readiness; seconds it took."""
        started = time.monotonic()
        probes = [f"http://{self.url}/v2/health/ready"]
        probes += [f"http://{self.url}/v2/models/{m}/ready" for m in models]
        for probe in probes:
            while not http_ok(probe):
                if self.process.poll() is not None:
                    raise RuntimeError(f"launcher exited: {self.log.read_text()[-3000:]}")
                if time.monotonic() - started > START_TIMEOUT_S:
                    raise TimeoutError(f"{probe} not ready: {self.log.read_text()[-3000:]}")
                time.sleep(0.1)
        return time.monotonic() - started

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait; kill only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_triton(repository: Path, log: Path, options: list[str] | None = None) -> LocalTriton:
    """Start ``python -m kpipe.local.triton.server`` on free ports (not waiting for it).

    ``options`` go on its command line after the ports.
    """
    http_port = free_port()
    command = [
        sys.executable,
        "-m",
        "kpipe.local.triton.server",
        "--model-repository",
        str(repository),
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        *(options or []),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return LocalTriton(process, http_port, log)


def copy_configs(target: Path, models: list[str]) -> Path:
    """Copy the real configs (and labels) of ``models`` into a new repository."""
    for model in models:
        (target / model).mkdir(parents=True)
        for item in (REPOSITORY / model).iterdir():
            if item.is_file():
                shutil.copy(item, target / model / item.name)
    return target
