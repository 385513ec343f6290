"""Readiness of the router and of everything it depends on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
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
    """

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._checks = dict(checks)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self) -> Health:
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
