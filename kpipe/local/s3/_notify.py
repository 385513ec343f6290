"""At-least-once webhook delivery of bucket notifications, like MinIO with a ``queue_dir``.

:meth:`WebhookNotifier.publish` writes the notification to an SQLite queue
(WAL, ``synchronous=FULL``: on disk when it returns) before the upload that
caused it is acknowledged. One thread per webhook URL then posts the queue in
order and deletes each notification once the webhook answers 2xx, retrying
with backoff until ``max_age_s``; the queue outlives the process, so a
notification pending when the stack dies is posted after the restart.
A crash between a post and its delete posts it again: receivers must (and
kpipe's router does) treat a repeat as a duplicate.

A 4xx answer other than 408 and 429 is permanent (the adapter will never
take that notification): it moves to the ``dead`` table with the answer and
a WARNING, and the notifications behind it go on at once. Everything else
(408, 429, 5xx, no answer) is retried.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kpipe.core.retry import Backoff, retrying
from kpipe.local.s3._running import Running

log = logging.getLogger(__name__)

# Between two posts of one notification: quick at first, at most 10 s apart.
_BACKOFF = Backoff(initial_s=0.2, max_s=10.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_url ON notifications (url, seq);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    status INTEGER NOT NULL,
    answer TEXT NOT NULL,
    died REAL NOT NULL
);
"""

# The 4xx answers that mean "not now" (timeout, too many requests): retried like a 5xx.
# Every other 4xx says the webhook will never take that notification.
_RETRIED_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class _Refused:
    """A permanent answer: its status and the start of its body."""

    status: int
    answer: str


class NotificationQueue:
    """The durable queue: one row per (notification, webhook URL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced, so an acknowledged upload's notification is on disk.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def push(self, urls: Iterable[str], body: bytes) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO notifications (url, body, created) VALUES (?, ?, ?)",
                    [(url, body, now) for url in urls],
                )
                self._db.execute("COMMIT")
            except BaseException:
                # Leave no transaction open (a full disk must not wedge every later upload).
                self._db.execute("ROLLBACK")
                raise

    def head(self, url: str) -> tuple[int, bytes, float] | None:
        """The oldest notification for ``url``: ``(seq, body, created)``."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, body, created FROM notifications WHERE url = ? ORDER BY seq LIMIT 1",
                (url,),
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), float(row[2]))

    def remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM notifications WHERE seq = ?", (seq,))

    def bury(self, seq: int, refused: _Refused) -> None:
        """Move a notification the webhook refused for good to ``dead``, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO dead (seq, url, body, created, status, answer, died) "
                    "SELECT seq, url, body, created, ?, ?, ? FROM notifications WHERE seq = ?",
                    (refused.status, refused.answer, time.time(), seq),
                )
                self._db.execute("DELETE FROM notifications WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def dead(self, url: str) -> list[tuple[int, int, str]]:
        """The notifications ``url`` refused for good: ``(seq, status, answer)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, status, answer FROM dead WHERE url = ? ORDER BY seq", (url,)
            ).fetchall()
        return [(int(s), int(st), str(a)) for s, st, a in rows]

    def depth(self, url: str) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT count(*) FROM notifications WHERE url = ?", (url,)
            ).fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _WebhookPoster(threading.Thread):
    """The delivery thread of one webhook URL: posts its queue in order."""

    def __init__(
        self,
        url: str,
        queue: NotificationQueue,
        headers: dict[str, str],
        timeout_s: float,
        max_age_s: float,
    ) -> None:
        super().__init__(name=f"s3-notify-{url}", daemon=True)
        self.url = url
        self.delivered = 0
        self.dropped = 0
        self.refused = 0
        self._queue = queue
        self._headers = headers
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._stopping = threading.Event()
        self.wake = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(self._timeout_s)) as client:
            while not self._stopping.is_set():
                self.wake.clear()  # before looking, so a publish in between is not missed
                item = self._queue.head(self.url)
                if item is None:
                    self.wake.wait(1.0)
                    continue
                seq, body, created = item
                try:
                    delivered = self._deliver(client, body, created)
                except Exception:  # a bug must not stop every later notification
                    log.exception("webhook %s: delivery of %d failed", self.url, seq)
                    self._stopping.wait(1.0)
                    continue
                if isinstance(delivered, _Refused):
                    # Kept before it is counted, so what the count says is on disk.
                    self._queue.bury(seq, delivered)
                    self.refused += 1
                    log.warning(
                        "webhook %s: notification %d refused for good (HTTP %d: %s); "
                        "kept in the dead table, the next ones go on",
                        self.url,
                        seq,
                        delivered.status,
                        delivered.answer[:200],
                    )
                    continue
                if delivered:
                    self.delivered += 1
                elif self._stopping.is_set():
                    return  # left in the queue for the next start
                else:
                    self.dropped += 1
                    log.error(
                        "webhook %s: notification %d dropped after %.0f s of failures",
                        self.url,
                        seq,
                        self._max_age_s,
                    )
                self._queue.remove(seq)

    def _post(self, client: httpx.Client, body: bytes) -> bool | _Refused:
        try:
            response = client.post(self.url, content=body, headers=self._headers)
        except httpx.TransportError as exc:
            log.info("webhook %s unreachable: %s", self.url, exc)
            return False
        status = response.status_code
        if 400 <= status < 500 and status not in _RETRIED_4XX:
            return _Refused(status, response.text[:500])
        if not response.is_success:
            log.info("webhook %s answered %d", self.url, status)
        return response.is_success

    def _deliver(self, client: httpx.Client, body: bytes, created: float) -> bool | _Refused:
        """Post until accepted or refused for good; False when ``max_age_s`` or a stop ends it."""
        remaining = max(0.0, self._max_age_s - (time.time() - created))
        policy = retrying(
            f"webhook {self.url}",
            _BACKOFF,
            deadline_s=remaining,
            on_result=lambda ok: ok is False,
            stop_when=self._stopping.is_set,
            sleep=self._stopping.wait,  # a stop cuts a wait short
            logger=log,
        )
        result: bool | _Refused = policy(self._post, client, body)
        return result

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        self.wake.set()
        self.join(timeout_s)


class WebhookNotifier(Running):
    """Queues notification payloads on disk for each webhook URL and posts them.

    Args:
        queue_path: the SQLite file of the queue (kept across restarts).
        urls: the webhook endpoints (each gets every notification).
        token: sent as ``Authorization: Bearer <token>`` when set.
        timeout_s: timeout of one POST.
        max_age_s: give up on a notification this long after it was queued
            (MinIO's queue_dir keeps them until delivered; a day is kpipe's bound).
    """

    def __init__(
        self,
        queue_path: Path,
        urls: Iterable[str],
        token: str | None = None,
        timeout_s: float = 5.0,
        max_age_s: float = 86_400.0,
    ) -> None:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._queue_path = queue_path
        self._urls = list(dict.fromkeys(urls))
        self._queue: NotificationQueue | None = None
        self._targets: list[_WebhookPoster] = []
        self._headers = headers
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s

    def start(self) -> None:
        """Open the queue and post what it holds, then what is published."""
        self._queue = NotificationQueue(self._queue_path)
        self._targets = [
            _WebhookPoster(url, self._queue, self._headers, self._timeout_s, self._max_age_s)
            for url in self._urls
        ]
        for target in self._targets:
            target.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop posting; what is still queued stays on disk for the next start."""
        for target in self._targets:
            target.stop(timeout_s)
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def publish(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for every webhook; on disk when this returns."""
        if not self._urls:
            return
        if self._queue is None:
            raise RuntimeError("the notifier is not started")
        self._queue.push(self._urls, json.dumps(payload).encode())
        for target in self._targets:
            target.wake.set()

    def stats(self) -> dict[str, dict[str, int]]:
        """Delivered, dropped (too old), refused (a permanent 4xx) and queued counts per URL."""
        queue = self._queue
        return {
            t.url: {
                "delivered": t.delivered,
                "dropped": t.dropped,
                "refused": t.refused,
                "queued": queue.depth(t.url) if queue is not None else 0,
            }
            for t in self._targets
        }
