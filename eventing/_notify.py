"""At-least-once webhook delivery of bucket notifications, like MinIO with a queue_dir.

One background thread per webhook URL posts notifications in order and
retries each one with exponential backoff until it is accepted or
``max_age_s`` has passed, so a webhook that is down for a while still gets
every notification once it is back. The queue is in memory: notifications
pending when the process stops are lost (MinIO's queue_dir is on disk).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import httpx

from eventing.sink import Backoff

log = logging.getLogger(__name__)

_STOP = object()


class _Target(threading.Thread):
    """The delivery thread of one webhook URL."""

    def __init__(
        self, url: str, token: str | None, timeout_s: float, backoff: Backoff, max_age_s: float
    ) -> None:
        super().__init__(name=f"s3-notify-{url}", daemon=True)
        self.url = url
        self.queue: queue.Queue[object] = queue.Queue(maxsize=10_000)
        self.delivered = 0
        self.dropped = 0
        self._headers = {"content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._max_age_s = max_age_s
        self._stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(self._timeout_s)) as client:
            while True:
                item = self.queue.get()
                if not isinstance(item, bytes):  # the stop marker
                    return
                self._deliver(client, item)

    def _deliver(self, client: httpx.Client, body: bytes) -> None:
        started = time.monotonic()
        attempt = 0
        while not self._stopping.is_set():
            try:
                response = client.post(self.url, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            if time.monotonic() - started > self._max_age_s:
                break
            log.warning("webhook %s: notification not delivered (%s); retrying", self.url, reason)
            self._stopping.wait(self._backoff.delay(attempt))
            attempt += 1
        self.dropped += 1
        log.error("webhook %s: notification dropped after %d attempt(s)", self.url, attempt + 1)

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        self.queue.put(_STOP)
        self.join(timeout_s)


class WebhookNotifier:
    """Queues notification payloads for each configured webhook URL.

    Args:
        urls: the webhook endpoints (each gets every notification).
        token: sent as ``Authorization: Bearer <token>`` when set.
        timeout_s: timeout of one POST.
        backoff: delays between attempts.
        max_age_s: give up on a notification after this long.
    """

    def __init__(
        self,
        urls: Iterable[str],
        token: str | None = None,
        timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        max_age_s: float = 3600.0,
    ) -> None:
        backoff = backoff or Backoff(initial_s=0.2, max_s=10.0)
        self._targets = [_Target(u, token, timeout_s, backoff, max_age_s) for u in urls]

    def start(self) -> None:
        for target in self._targets:
            target.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the threads; notifications still queued are lost."""
        for target in self._targets:
            target.stop(timeout_s)

    def publish(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for every webhook without blocking the caller."""
        body = json.dumps(payload).encode()
        for target in self._targets:
            try:
                target.queue.put_nowait(body)
            except queue.Full:
                target.dropped += 1
                log.error("webhook %s: queue full, notification dropped", target.url)

    def stats(self) -> dict[str, dict[str, int]]:
        """Delivered, dropped and queued counts per webhook URL."""
        return {
            t.url: {"delivered": t.delivered, "dropped": t.dropped, "queued": t.queue.qsize()}
            for t in self._targets
        }

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
