"""Readiness of the router and of everything it depends on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

Check = Callable[[], None]


@dataclass(frozen=True)
class Health:
    """The outcome of one readiness check of every component."""

    ready: bool
    components: dict[str, str]
    failing: str | None = None

    def to_data(self) -> dict[str, object]:
        data: dict[str, object] = {
            "status": "ok" if self.ready else "unavailable",
            "components": self.components,
        }
        if self.failing:
            data["component"] = self.failing
        return data


def http_check(url: str, timeout_s: float = 2.0) -> Check:
    """A check that passes when ``url`` answers a GET with a 2xx."""

    def check() -> None:
        response = httpx.get(url, timeout=timeout_s)
        if not response.is_success:
            raise RuntimeError(f"{url} answered {response.status_code}")

    return check


class HealthChecker:
    """Runs every named check at once and reports the first one that fails.

    Checks run in the order given, so the report names the most basic
    component that is down (the database before the parts that need it).
    Probes that come while a check is running share its result: a prober
    that gives up and asks again never queues more checks than there are
    threads (which would leave every later check waiting, and the stack
    "unhealthy" for good on a busy machine).
    """

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._checks = dict(checks)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._checks)), thread_name_prefix="health"
        )
        self._lock = threading.Lock()
        self._running: Future[Health] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self) -> Health:
        """The health of every component (the running check's, if one is running)."""
        with self._lock:
            running = self._running
            if running is None or running.done():
                running = self._running = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return running.result()
        try:
            health = self._check_all()
        except BaseException as exc:
            running.set_exception(exc)
            raise
        running.set_result(health)
        return health

    def _check_all(self) -> Health:
        futures = {name: self._pool.submit(fn) for name, fn in self._checks.items()}
        components: dict[str, str] = {}
        failing: str | None = None
        for name, future in futures.items():
            try:
                future.result(timeout=5)
                components[name] = "ready"
            except Exception as exc:  # any failure of a probe means "not ready"
                components[name] = f"not ready: {exc}"[:300]
                failing = failing or name
        return Health(failing is None, components, failing)
