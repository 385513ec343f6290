"""The relay of the transactional outbox: posts the router's events to the broker.

Every event the router emits is written to the outbox (``kpipe_outbox``) in
the transaction of the change that caused it (:class:`router.store.Emission`),
so no crash can separate a run's progress from the events it leads to. The
answer to the event being handled goes back to the broker as the reply (the
broker stores it with the delivery, as Knative's do) and is kept for a while
so that a redelivery of its cause gets it again. Every other event is posted
to ``K_SINK`` by this relay, and deleted only once the broker took it (2xx).

The relay is woken by each commit that gave it events (in this process: the
replica that commits an event posts it, so no ``LISTEN/NOTIFY`` is needed for
latency), and polls for what another replica left behind when it died. On
PostgreSQL the rows it posts are locked with ``FOR UPDATE SKIP LOCKED``, so two
replicas never post one row. A restarted router posts what is waiting at once.

Example:
    >>> relay = Relay(store, sink.send)  # doctest: +SKIP
    >>> relay.start()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from eventing.contract import Event
from eventing.errors import DeliveryFailed
from eventing.sink import is_retryable
from router.store import Store

log = logging.getLogger(__name__)

# How many rows one drain posts before it commits their deletion.
BATCH = 64
# How often an idle relay looks for rows another replica left (seconds), and
# the longest it waits after the broker would not take an event.
POLL_S = 1.0
MAX_BACKOFF_S = 30.0


class Relay:
    """Posts the outbox's events to the broker, oldest first.

    Args:
        store: the router's store, whose outbox it drains.
        send: posts one event (signed by the caller) to the broker; raises
            DeliveryFailed when the broker did not take it.
        poll_s: how often an idle relay looks for rows anyway.
    """

    def __init__(self, store: Store, send: Callable[[Event], None], poll_s: float = POLL_S) -> None:
        self._store = store
        self._send = send
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        store.on_emit = self.wake

    def start(self) -> None:
        """Post what is waiting, then keep posting in the background (again, after a stop)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._wake.set()  # a restarted router posts what it left at once
        self._thread = threading.Thread(target=self._loop, name="kpipe-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def wake(self) -> None:
        """Ask the relay to post what was just committed."""
        self._wake.set()

    def drain(self) -> bool:
        """Post every waiting event now, in this thread; False if the broker stopped taking them.

        Safe from any thread: one drain at a time runs in this process.
        """
        with self._drain_lock:
            while True:
                with self._store.claim_outbox(BATCH) as claim:
                    for row in claim.rows:
                        try:
                            self._send(row.event)
                        except DeliveryFailed as exc:
                            if exc.status is not None and not is_retryable(exc.status):
                                # Never taken, however often posted: kept, for an operator.
                                log.error("the broker refused %s for good: %s", row.event.id, exc)
                                claim.refused[row.seq] = exc.message
                                continue
                            log.warning("the broker did not take %s: %s", row.event.id, exc)
                            return False
                        claim.sent.append(row.seq)
                if len(claim.rows) < BATCH:
                    return True

    def _loop(self) -> None:
        backoff = self._poll_s
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                ok = self.drain()
            except Exception:  # the relay must outlive a bad drain; the next one retries
                log.exception("relaying the outbox failed")
                ok = False
            backoff = self._poll_s if ok else min(backoff * 2, MAX_BACKOFF_S)
