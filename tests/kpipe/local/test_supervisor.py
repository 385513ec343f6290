"""The supervisor's restarts: backoff that grows with crashes in a row and starts over.

Real child processes crash or stay up as the test says; the supervisor's
clock is a fake one the test moves, so no test waits for a real backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from kpipe.core.retry import Backoff
from kpipe.local.supervisor import ProcessSpec, Supervisor
from tests.conftest import wait_until

# Appends its pid to <dir>/starts, then exits 3 ("crash") or stays up ("stay").
_CHILD = """
import os, pathlib, sys, time
home = pathlib.Path(sys.argv[1])
with (home / "starts").open("a") as starts:
    starts.write(f"{os.getpid()}\\n")
if (home / "mode").read_text() == "crash":
    sys.exit(3)
while True:
    time.sleep(1)
"""

BACKOFF = Backoff(initial_s=10.0, factor=2.0, max_s=1000.0, jitter=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Child:
    """The supervised child: switch its mode, read its starts, kill it."""

    home: Path
    clock: FakeClock
    caplog: pytest.LogCaptureFixture

    def mode(self, mode: str) -> None:
        (self.home / "mode").write_text(mode)

    def pids(self) -> list[int]:
        path = self.home / "starts"
        return [int(line) for line in path.read_text().split()] if path.exists() else []

    def wait_starts(self, count: int) -> None:
        wait_until(lambda: len(self.pids()) >= count, timeout_s=30, poll_s=0.02)

    def delays(self) -> list[float]:
        """The restart delays the supervisor logged, in order."""
        records = self.caplog.records
        logged = [
            r for r in records if r.name == "kpipe.local.supervisor" and "restarting in" in r.msg
        ]
        # the message's arguments: name, exit code, uptime, delay, log path
        return [float(cast("tuple[Any, ...]", r.args)[3]) for r in logged]

    def wait_delays(self, count: int) -> list[float]:
        wait_until(lambda: len(self.delays()) >= count, timeout_s=30, poll_s=0.02)
        return self.delays()


@pytest.fixture
def child(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Child]:
    """A supervised child (crashing at first) and a watching supervisor on a fake clock."""
    clock = FakeClock()
    found = Child(tmp_path, clock, caplog)
    found.mode("crash")
    spec = ProcessSpec(
        "child", [sys.executable, "-c", _CHILD, str(tmp_path)], "http://127.0.0.1:1/"
    )
    supervisor = Supervisor(
        [spec], tmp_path / "logs", backoff=BACKOFF, stable_after_s=60.0, clock=clock
    )
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.watch, args=(stop, 0.01), daemon=True)
    with caplog.at_level(logging.ERROR, logger="kpipe.local.supervisor"), supervisor.running():
        watcher.start()
        yield found
        stop.set()
        watcher.join(10)


def test_the_backoff_grows_with_crashes_in_a_row(child: Child) -> None:
    assert child.wait_delays(1) == [10.0]
    child.clock.advance(10)
    child.wait_starts(2)
    assert child.wait_delays(2) == [10.0, 20.0]
    child.clock.advance(20)
    child.wait_starts(3)
    assert child.wait_delays(3) == [10.0, 20.0, 40.0]


def test_a_process_that_stayed_up_restarts_without_the_old_long_delay(child: Child) -> None:
    child.wait_delays(1)
    child.clock.advance(10)
    child.wait_starts(2)
    assert child.wait_delays(2) == [10.0, 20.0]  # two crashes in a row
    child.mode("stay")
    child.clock.advance(20)
    child.wait_starts(3)
    child.clock.advance(61)  # up for longer than stable_after_s
    os.kill(child.pids()[-1], signal.SIGKILL)
    assert child.wait_delays(3) == [10.0, 20.0, 10.0]  # not 40: the backoff started over
    child.clock.advance(10)
    child.wait_starts(4)


def test_a_process_that_crashes_again_soon_keeps_its_backoff(child: Child) -> None:
    child.wait_delays(1)
    child.mode("stay")
    child.clock.advance(10)
    child.wait_starts(2)
    child.clock.advance(59)  # up, but not for stable_after_s
    os.kill(child.pids()[-1], signal.SIGKILL)
    assert child.wait_delays(2) == [10.0, 20.0]
