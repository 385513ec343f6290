"""The readiness check: the first component that is down, and no pile-up of probes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from router.health import HealthChecker


def test_the_first_failing_component_is_named() -> None:
    def down() -> None:
        raise RuntimeError("connection refused")

    checker = HealthChecker({"database": lambda: None, "object-store": down, "triton": down})
    try:
        health = checker.check()
    finally:
        checker.close()
    assert not health.ready
    assert health.failing == "object-store"
    assert health.components["database"] == "ready"
    assert "connection refused" in health.components["triton"]


def test_probes_that_come_during_a_check_share_it_instead_of_queueing_more() -> None:
    calls = 0
    lock = threading.Lock()
    release = threading.Event()

    def slow() -> None:
        nonlocal calls
        with lock:
            calls += 1
        release.wait(5)

    checker = HealthChecker({"slow": slow})
    try:
        with ThreadPoolExecutor(20) as probes:
            results = [probes.submit(checker.check) for _ in range(20)]
            while calls == 0:
                time.sleep(0.01)
            time.sleep(0.2)  # every probe has arrived while the first check runs
            release.set()
            healths = [r.result(10) for r in results]
    finally:
        checker.close()
    assert all(h.ready for h in healths)
    assert calls <= 2  # 20 without the sharing: one per probe
