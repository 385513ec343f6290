"""A small process supervisor: start processes, wait until ready, restart, stop.

``kpipe up`` uses it to run the local stack the way Kubernetes runs the
cluster's: each component is its own process with its own env, probed on an
HTTP readiness URL and restarted with backoff when it dies. As with a
kubelet's CrashLoopBackOff, the backoff grows with each crash and starts
over once a process has stayed up for a while.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kpipe.core.retry import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one component and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    ready_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0


# Restart delays: 1 s, 2 s, 4 s ... up to 30 s, less up to a quarter of jitter.
RESTART_BACKOFF = Backoff(initial_s=1.0, factor=2.0, max_s=30.0, jitter=0.25)


class ComponentFailed(RuntimeError):
    """A component exited or never became ready; the message says which and where its log is."""

    def __init__(self, name: str, reason: str, log_path: Path) -> None:
        super().__init__(f"{name} {reason}; see {log_path}")
        self.name = name


class _Process:
    def __init__(self, spec: ProcessSpec, log_dir: Path, base_env: Mapping[str, str]) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self._base_env = base_env
        self.popen: subprocess.Popen[bytes] | None = None
        # Crashes since the process last stayed up; the next restart waits backoff.delay(crashes).
        self.crashes = 0
        self.started_at = 0.0
        self.next_start: float | None = None

    def start(self, now: float) -> None:
        self.started_at = now
        self.next_start = None
        env = {**self._base_env, **self.spec.env}
        with self.log_path.open("ab") as out:
            # A new session per child: Ctrl-C reaches only the supervisor, which
            # then stops every child in order and can kill a child's own children.
            self.popen = subprocess.Popen(
                list(self.spec.argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def ready(self) -> bool:
        try:
            return httpx.get(self.spec.ready_url, timeout=1.0).is_success
        except httpx.HTTPError:
            return False

    def stop(self, grace_s: float) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.spec.name, grace_s)
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        except ProcessLookupError:
            pass


class Supervisor:
    """Starts processes, waits until all are ready, restarts any that die, stops them all.

    Example:
        >>> with Supervisor(specs, Path(".kpipe/logs")) as stack:  # doctest: +SKIP
        ...     stack.wait_ready()
        ...     stack.watch(stop_event)
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        log_dir: Path,
        base_env: Mapping[str, str] | None = None,
        backoff: Backoff = RESTART_BACKOFF,
        stable_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare the processes (nothing starts until :meth:`start`).

        Args:
            specs: the processes, in start order.
            log_dir: where each process's ``<name>.log`` goes.
            base_env: the env every process gets (default: this process's).
            backoff: the delay before a restart, from the crashes in a row.
            stable_after_s: a process that stayed up this long has its
                backoff start over at its next crash.
            clock: a monotonic clock (for tests).
        """
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if base_env is None else base_env)
        self._processes = [_Process(s, log_dir, env) for s in specs]
        self._backoff = backoff
        self._stable_after_s = stable_after_s
        self._clock = clock

    @property
    def names(self) -> list[str]:
        return [p.spec.name for p in self._processes]

    def start(self) -> None:
        for process in self._processes:
            process.start(self._clock())

    def wait_ready(
        self,
        on_ready: Callable[[str], object] | None = None,
        stop: threading.Event | None = None,
    ) -> bool:
        """Block until every process answers its readiness URL.

        Returns:
            True when all are ready; False if ``stop`` was set first.

        Raises:
            ComponentFailed: a process exited, or was not ready in time.
        """
        deadline = {p.spec.name: time.monotonic() + p.spec.ready_timeout_s for p in self._processes}
        pending = list(self._processes)
        while pending:
            if stop is not None and stop.is_set():
                return False
            for process in list(pending):
                code = process.exited()
                if code is not None:
                    raise ComponentFailed(
                        process.spec.name, f"exited with {code}", process.log_path
                    )
                if process.ready():
                    pending.remove(process)
                    if on_ready is not None:
                        on_ready(process.spec.name)
                elif time.monotonic() > deadline[process.spec.name]:
                    raise ComponentFailed(
                        process.spec.name,
                        f"was not ready after {process.spec.ready_timeout_s:.0f} s",
                        process.log_path,
                    )
            time.sleep(0.2)
        return True

    def watch(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Restart any process that dies, with backoff, until ``stop`` is set."""
        while not stop.wait(poll_s):
            now = self._clock()
            for process in self._processes:
                code = process.exited()
                if code is None:
                    continue
                if process.next_start is None:
                    process.next_start = now + self._restart_delay(process, code, now)
                elif now >= process.next_start:
                    process.start(now)

    def _restart_delay(self, process: _Process, code: int, now: float) -> float:
        """Seconds until ``process``, which just exited with ``code``, starts again."""
        uptime = now - process.started_at
        if uptime >= self._stable_after_s:
            process.crashes = 0  # it had recovered: this crash is a first one again
        delay = self._backoff.delay(process.crashes)
        process.crashes += 1
        log.error(
            "%s exited with %s after %.0f s up; restarting in %.1f s (log: %s)",
            process.spec.name,
            code,
            uptime,
            delay,
            process.log_path,
        )
        return delay

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop every process, the last started first."""
        for process in reversed(self._processes):
            process.stop(grace_s)

    @contextmanager
    def running(self) -> Iterator[Supervisor]:
        """Start everything and stop it all on the way out, whatever happens."""
        try:
            self.start()
            yield self
        finally:
            self.stop()
