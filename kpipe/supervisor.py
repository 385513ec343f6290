"""A small process supervisor: start processes, wait until ready, restart, stop.

``kpipe up`` uses it to run the local stack the way Kubernetes runs the
cluster's: each component is its own process with its own env, probed on an
HTTP readiness URL and restarted with backoff when it dies.
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one component and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    ready_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0


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
        self.restarts = 0
        self.next_start = 0.0

    def start(self) -> None:
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
        max_backoff_s: float = 30.0,
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if base_env is None else base_env)
        self._processes = [_Process(s, log_dir, env) for s in specs]
        self._max_backoff_s = max_backoff_s

    @property
    def names(self) -> list[str]:
        return [p.spec.name for p in self._processes]

    def start(self) -> None:
        for process in self._processes:
            process.start()

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
        """Restart any process that dies, with exponential backoff, until ``stop`` is set."""
        while not stop.wait(poll_s):
            now = time.monotonic()
            for process in self._processes:
                code = process.exited()
                if code is None or now < process.next_start:
                    continue
                delay = min(self._max_backoff_s, 2.0**process.restarts)
                if process.next_start == 0.0:
                    log.error(
                        "%s exited with %s; restarting in %.0f s (log: %s)",
                        process.spec.name,
                        code,
                        delay,
                        process.log_path,
                    )
                    process.next_start = now + delay
                    continue
                process.restarts += 1
                process.next_start = 0.0
                process.start()

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
