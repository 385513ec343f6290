"""The S3 server's webhook notifier against a real HTTP receiver: refusals, retries, order."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kpipe.local.s3._notify import WebhookNotifier
from tests.eventing.conftest import Subscriber

TOKEN = "s3cret"
OK: tuple[int, bytes, dict[str, str]] = (200, b"", {})
REFUSAL = b'{"error": {"code": "malformed_notification", "message": "no"}}'
# The shortest wait before a first retry: 0.2 s, less at most 25 % jitter.
SHORTEST_BACKOFF_S = 0.15

Notifier = Callable[[str], WebhookNotifier]


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "notifications.db"


@pytest.fixture
def notifier(queue_path: Path) -> Iterator[Notifier]:
    """Start a notifier that posts to one webhook URL; stopped after the test."""
    started: list[WebhookNotifier] = []

    def start(url: str) -> WebhookNotifier:
        running = WebhookNotifier(queue_path, [url], token=TOKEN)
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def _keys(hook: Subscriber) -> list[str]:
    return [json.loads(r.body)["Key"] for r in hook.received]


def _dead_rows(queue_path: Path) -> list[tuple[int, str, bytes, int, str, float]]:
    """The ``dead`` table as it is on disk."""
    with sqlite3.connect(queue_path) as db:
        rows = db.execute(
            "SELECT seq, url, body, status, answer, died FROM dead ORDER BY seq"
        ).fetchall()
    return [(int(s), str(u), bytes(b), int(st), str(a), float(d)) for s, u, b, st, a, d in rows]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_a_refused_notification_goes_to_the_dead_table_and_the_next_ones_go_on(
    notifier: Notifier,
    queue_path: Path,
    subscriber: Callable[..., Subscriber],
    wait_for: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    # The adapter will never take the first notification; it takes the rest.
    hook = subscriber((status, REFUSAL, {}), OK)
    running = notifier(hook.url)
    with caplog.at_level(logging.WARNING, logger="kpipe.local.s3._notify"):
        for key in ("poison", "next", "last"):
            running.publish({"Key": key})
        wait_for(lambda: running.stats()[hook.url]["delivered"] == 2, timeout_s=5)
    # Each posted once, in order: the refusal was not retried.
    assert _keys(hook) == ["poison", "next", "last"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hook.received)
    assert running.stats()[hook.url] == {"delivered": 2, "dropped": 0, "refused": 1, "queued": 0}
    [(seq, url, body, dead_status, answer, died)] = _dead_rows(queue_path)
    assert (url, json.loads(body), dead_status, answer) == (
        hook.url,
        {"Key": "poison"},
        status,
        REFUSAL.decode(),
    )
    assert died > 0
    [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert all(part in line.getMessage() for part in (hook.url, f" {seq} ", f"HTTP {status}"))


def test_the_dead_table_keeps_the_start_of_a_long_answer(
    notifier: Notifier,
    queue_path: Path,
    subscriber: Callable[..., Subscriber],
    wait_for: Callable[..., None],
) -> None:
    hook = subscriber((400, b"x" * 100_000, {}))
    running = notifier(hook.url)
    running.publish({"Key": "poison"})
    wait_for(lambda: running.stats()[hook.url]["refused"] == 1)
    [(_, _, _, _, answer, _)] = _dead_rows(queue_path)
    assert answer == "x" * 500


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_a_busy_or_failing_webhook_is_retried_with_backoff_then_delivered_in_order(
    notifier: Notifier,
    queue_path: Path,
    subscriber: Callable[..., Subscriber],
    wait_for: Callable[..., None],
    status: int,
) -> None:
    hook = subscriber((status, b"", {}), (status, b"", {}), OK)
    running = notifier(hook.url)
    running.publish({"Key": "first"})
    running.publish({"Key": "second"})
    wait_for(lambda: running.stats()[hook.url]["delivered"] == 2, timeout_s=10)
    # The second waits behind the first, which is retried until it is taken.
    assert _keys(hook) == ["first", "first", "first", "second"]
    tries = [r.at for r in hook.received[:3]]
    assert min(later - earlier for earlier, later in itertools.pairwise(tries)) >= (
        SHORTEST_BACKOFF_S
    )
    assert running.stats()[hook.url] == {"delivered": 2, "dropped": 0, "refused": 0, "queued": 0}
    assert _dead_rows(queue_path) == []


def test_a_webhook_that_does_not_answer_is_retried_until_it_comes_up(
    notifier: Notifier,
    queue_path: Path,
    free_port: Callable[[], int],
    subscriber: Callable[..., Subscriber],
    wait_for: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    with caplog.at_level(logging.INFO, logger="kpipe.local.s3._notify"):
        running = notifier(f"http://127.0.0.1:{port}/")  # nothing listens there yet
        running.publish({"Key": "first"})
        wait_for(lambda: "unreachable" in caplog.text)
    hook = subscriber(OK, port=port)
    wait_for(lambda: running.stats()[hook.url]["delivered"] == 1, timeout_s=15)
    assert _keys(hook) == ["first"]
    assert _dead_rows(queue_path) == []
