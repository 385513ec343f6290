"""The local broker's durable queue: every delivery not yet done, in an SQLite file.

A row is one event on its way to one trigger's subscriber (or to its
dead-letter sink): the event, its hops left, how many attempts failed and
when the next is due. The broker writes a row before it answers 202, and
deletes it only when the subscriber took the event, in the same transaction
that queues the subscriber's reply. After a crash the broker starts again
from the rows, so an accepted event is delivered at least once, with the
attempts already spent counted: the semantics of Knative's Kafka and
RabbitMQ broker classes (not of its in-memory channel).

The file is in WAL mode. With ``synchronous=NORMAL`` (the default) a commit
is in the operating system's hands when it returns: it survives the broker's
process dying (``kill -9``), not a power cut, like Kafka with its default
flush settings; ``synchronous=FULL`` fsyncs every commit.

Example:
    >>> queue = DeliveryQueue(":memory:")
    >>> [seq] = queue.add([("router", b'{"a":{}}', 255)])
    >>> [row.trigger for row in queue.rows()]
    ['router']
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    event BLOB NOT NULL,
    hops INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    dead_letter INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
"""

Sync = Literal["NORMAL", "FULL"]
# (trigger name, serialised event, hops left)
NewDelivery = tuple[str, bytes, int]


@dataclass(frozen=True)
class Row:
    """One stored delivery."""

    seq: int
    trigger: str
    event: bytes
    hops: int
    attempts: int
    due: float
    dead_letter: bool


class DeliveryQueue:
    """The deliveries of one broker, in one SQLite file.

    Not thread-safe: the broker uses it from its event loop only.

    Args:
        path: the file (``:memory:`` for a queue that dies with the process).
        synchronous: SQLite's ``synchronous`` in WAL mode (see the module doc).
    """

    def __init__(self, path: Path | str, synchronous: Sync = "NORMAL") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)

    def add(self, deliveries: Iterable[NewDelivery]) -> list[int]:
        """Store new deliveries, due now; their sequence numbers."""
        with self._tx():
            return self._insert(deliveries)

    def complete(self, seq: int, replies: Iterable[NewDelivery] = ()) -> list[int]:
        """Forget a done delivery and store the deliveries of its reply, atomically."""
        with self._tx():
            self._db.execute("DELETE FROM deliveries WHERE seq = ?", (seq,))
            return self._insert(replies)

    def begin(self, seq: int, attempts: int) -> None:
        """Count an attempt before it is dispatched, so one that kills the process still counts."""
        self._db.execute("UPDATE deliveries SET attempts = ? WHERE seq = ?", (attempts, seq))

    def failed(self, seq: int, attempts: int, due: float) -> None:
        """Record a failed attempt and when the next one is due."""
        self._db.execute(
            "UPDATE deliveries SET attempts = ?, due = ? WHERE seq = ?", (attempts, due, seq)
        )

    def dead_letter(self, seq: int, event: bytes) -> None:
        """Turn a delivery that ran out of retries into one to the dead-letter sink."""
        self._db.execute(
            "UPDATE deliveries SET event = ?, attempts = 0, due = ?, dead_letter = 1 WHERE seq = ?",
            (event, time.time(), seq),
        )

    def remove(self, seq: int) -> None:
        """Forget a delivery (dropped, or done with no reply)."""
        self._db.execute("DELETE FROM deliveries WHERE seq = ?", (seq,))

    def rows(self) -> list[Row]:
        """Every stored delivery, oldest first."""
        cursor = self._db.execute(
            "SELECT seq, trigger, event, hops, attempts, due, dead_letter "
            "FROM deliveries ORDER BY seq"
        )
        return [
            Row(int(s), str(t), bytes(e), int(h), int(a), float(d), bool(dl))
            for s, t, e, h, a, d, dl in cursor
        ]

    def close(self) -> None:
        self._db.close()

    def _insert(self, deliveries: Iterable[NewDelivery]) -> list[int]:
        now = time.time()
        seqs = []
        for trigger, event, hops in deliveries:
            cursor = self._db.execute(
                "INSERT INTO deliveries (trigger, event, hops, due, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (trigger, event, hops, now, now),
            )
            seqs.append(int(cursor.lastrowid or 0))
        return seqs

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
