"""`kpipe up` as a process: health naming a dead component, restarts, Ctrl-C, state kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from kpipe.local.config import PARTS
from tests.conftest import encode, wait_until
from tests.e2e.conftest import REPO, free_block, ports_at, stack_env, start_stack, stop_stack
from tests.e2e.test_pipelines import PRIVACY

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def _pid_serving(port: int) -> int:
    """The pid of the process started with ``--port <port>`` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1 : argv.index(b"--port") + 2] == [
            str(port).encode()
        ]:
            return int(entry.name)
    raise LookupError(f"no process serves port {port}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_state_survives_a_restart_and_ctrl_c_stops_everything(
    tmp_path: Path, astronaut: npt.NDArray[np.uint8]
) -> None:
    ports = ports_at(free_block(20))
    stack = start_stack(tmp_path, ports)
    try:
        stack.apply(PRIVACY)
        stack.upload("restart.jpg", encode(astronaut))
        first = stack.wait_run("privacy-blur", "restart.jpg")
        assert first["status"] == "succeeded"

        # a part dies: /healthz names it, the supervisor restarts it
        blur_port = ports["parts"] + 1 + PARTS.index("blur")
        os.killpg(_pid_serving(blur_port), signal.SIGKILL)
        health = httpx.get(f"{stack.api}/healthz", timeout=10)
        assert health.status_code == 503
        components = health.json()["components"]
        assert components["blur"].startswith("not ready"), components
        # it names the first component that is not ready (on a loaded 2-core
        # machine a slow probe of another one may come first)
        assert components[health.json()["component"]].startswith("not ready")
        wait_until(
            lambda: httpx.get(f"{stack.api}/healthz", timeout=10).status_code == 200,
            timeout_s=60,
            poll_s=0.25,
        )
    finally:
        code = stop_stack(stack)
    assert code == 0
    # Ctrl-C left nothing behind: every port is free again
    assert not [name for name, port in ports.items() if _listening(port)]

    again = start_stack(tmp_path, ports)
    try:
        with again.client() as api:
            assert [p["name"] for p in api.get("/v1/pipelines").json()] == ["privacy-blur"]
            run = api.get(f"/v1/runs/{first['id']}").json()
        assert run["status"] == "succeeded"
        assert run["outputs"] == first["outputs"]
    finally:
        stop_stack(again)


def test_ctrl_c_during_start_up_stops_everything_even_if_sigint_was_ignored(
    tmp_path: Path,
) -> None:
    """A shell that runs `make up &` leaves SIGINT ignored; kpipe up handles it itself."""
    ports = ports_at(free_block(20))
    env = stack_env(tmp_path, ports)
    process = subprocess.Popen(
        [sys.executable, "-m", "kpipe.cli", "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    wait_until(lambda: _listening(ports["s3"]), timeout_s=60, poll_s=0.25)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode()
    assert b"kpipe: stopped" in output
    assert b"kpipe is up" not in output
    assert not [name for name, port in ports.items() if _listening(port)]
