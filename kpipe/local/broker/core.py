"""The local broker: durable per-trigger deliveries, retried on Knative's schedule.

Every accepted event is written to the :class:`~kpipe.local.broker.queue.DeliveryQueue`
once per matching trigger before :meth:`Broker.ingest` returns, so the
ingress answers 202 only for what survives a crash. Workers deliver each
trigger's events (over HTTP, or as a call to a subscriber in this process);
a failed attempt is rescheduled after the trigger's backoff without holding
a worker. Each attempt is counted, on disk, before it is dispatched: a
poison event whose delivery kills the process still runs out of retries
and reaches the dead-letter sink after restarts. A subscriber's reply
event is stored in the same transaction that forgets the delivery it
answered. On start the broker resumes every stored delivery.

Example:
    >>> async def demo() -> dict[str, int]:
    ...     async with Broker(BrokerConfig()) as broker:
    ...         return broker.status()["counters"]
    >>> import asyncio; asyncio.run(demo())["received"]
    0
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from cloudevents.conversion import to_json
from cloudevents.http import CloudEvent, from_json

from kpipe.local.broker.delivery import (
    Dispatcher,
    LocalSubscriber,
    Outcome,
    RetryPolicy,
    dead_letter_event,
)
from kpipe.local.broker.errors import BrokerBusy
from kpipe.local.broker.queue import DeliveryQueue, NewDelivery, Sync
from kpipe.local.broker.triggers import BrokerConfig, Trigger

log = logging.getLogger(__name__)

TTL_EXTENSION = "knativebrokerttl"


@dataclass
class _Route:
    """One trigger: its ready deliveries, its workers and its resolved delivery policy."""

    trigger: Trigger
    policy: RetryPolicy
    ready: asyncio.Queue[_Delivery] = field(default_factory=asyncio.Queue)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    pending: int = 0  # stored and not yet done: ready, waiting for a retry, or in flight
    in_flight: int = 0


@dataclass
class _Delivery:
    """One stored delivery, in memory."""

    seq: int
    route: _Route
    ce: CloudEvent
    hops: int
    attempts: int = 0
    dead_letter: bool = False


def _attributes(ce: CloudEvent) -> dict[str, str]:
    return {k: str(v) for k, v in ce.get_attributes().items() if v is not None}


def _take_ttl(ce: CloudEvent, default: int) -> int:
    """Remove the TTL extension from ``ce`` and return it (``default`` if absent)."""
    raw = ce.get_attributes().get(TTL_EXTENSION)
    if raw is None:
        return default
    ce._attributes.pop(TTL_EXTENSION, None)  # the SDK has no public delete
    try:
        return int(str(raw))
    except ValueError:
        return default


class Broker:
    """Routes CloudEvents to the subscribers of matching triggers, durably.

    Args:
        config: triggers, default delivery spec and TTL.
        concurrency: deliveries in flight per trigger (its worker count).
        max_queue: deliveries pending per trigger before the ingress answers 503.
        drain_timeout_s: how long :meth:`stop` waits for deliveries in flight.
        queue_path: the SQLite file of the queue (``:memory:``: not durable).
        synchronous: the queue's SQLite ``synchronous`` (NORMAL or FULL).
        local: in-process subscribers by URI (see :class:`Dispatcher`).
    """

    def __init__(
        self,
        config: BrokerConfig,
        concurrency: int = 32,
        max_queue: int = 10_000,
        drain_timeout_s: float = 5.0,
        queue_path: Path | str = ":memory:",
        synchronous: Sync = "NORMAL",
        local: Mapping[str, LocalSubscriber] | None = None,
    ) -> None:
        self.config = config
        self.counters: Counter[str] = Counter(
            {k: 0 for k in ("received", "delivered", "failed", "dead_lettered", "dropped")}
        )
        self._concurrency = concurrency
        self._max_queue = max_queue
        self._drain_timeout_s = drain_timeout_s
        self._queue_path = queue_path
        self._synchronous: Sync = synchronous
        self._local = dict(local or {})
        self._routes: dict[str, _Route] = {}
        self._queue: DeliveryQueue | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        """Open the queue and the HTTP client, resume stored deliveries, start the workers."""
        self._queue = DeliveryQueue(self._queue_path, self._synchronous)
        # Keep-alive connections to every subscriber; a delivery's timeout is per request.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=self._concurrency),
            skip_auto_headers=("User-Agent",),
        )
        self._routes = {
            t.name: _Route(t, RetryPolicy.from_spec(t.delivery.over(self.config.delivery)))
            for t in self.config.triggers
        }
        self._resume()
        dispatcher = Dispatcher(self._session, self._local)
        for route in self._routes.values():
            route.workers = [
                asyncio.create_task(self._work(route, dispatcher), name=f"{route.trigger.name}-{i}")
                for i in range(route.trigger.concurrency or self._concurrency)
            ]

    def _resume(self) -> None:
        """Put every stored delivery back in memory, each due when it was due."""
        queue = self._require_queue()
        now = time.time()
        resumed = 0
        for row in queue.rows():
            route = self._routes.get(row.trigger)
            if route is None:
                log.warning("delivery %d dropped: trigger %r is gone", row.seq, row.trigger)
                queue.remove(row.seq)
                self.counters["dropped"] += 1
                continue
            ce = from_json(row.event)
            delivery = _Delivery(row.seq, route, ce, row.hops, row.attempts, row.dead_letter)
            route.pending += 1
            self._schedule(delivery, max(0.0, row.due - now))
            resumed += 1
        if resumed:
            log.info("broker resumed %d stored deliveries", resumed)

    async def stop(self) -> None:
        """Wait up to ``drain_timeout_s`` for deliveries in flight, then stop.

        What is not delivered stays in the queue for the next start.
        """
        deadline = time.monotonic() + self._drain_timeout_s
        while any(r.in_flight for r in self._routes.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for timer in self._timers:
            timer.cancel()
        workers = [w for r in self._routes.values() for w in r.workers]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        pending = sum(r.pending for r in self._routes.values())
        if pending:
            log.info("broker stopped with %d deliveries stored", pending)
        if self._session is not None:
            await self._session.close()
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def ingest(self, ce: CloudEvent, ttl: int | None = None) -> int:
        """Store ``ce`` for every matching trigger; call on the broker's event loop.

        Args:
            ce: the event (its TTL extension is taken off it).
            ttl: the hops left; None reads the event's ``knativebrokerttl``.

        Returns:
            How many triggers matched.

        Raises:
            BrokerBusy: a matching trigger has ``max_queue`` deliveries pending
                (nothing was stored).
        """
        hops = _take_ttl(ce, self.config.ttl) if ttl is None else ttl
        self.counters["received"] += 1
        routes = self._matching(ce, hops)
        if routes:
            seqs = self._require_queue().add(self._rows(ce, hops, routes))
            self._enqueue(ce, hops, routes, seqs)
        return len(routes)

    def _matching(self, ce: CloudEvent, hops: int) -> list[_Route]:
        """The routes ``ce`` goes to; BrokerBusy if one of them is full."""
        if hops <= 0:
            self.counters["dropped_ttl"] += 1
            log.warning("event %s dropped: %s reached 0 (a reply loop?)", ce["id"], TTL_EXTENSION)
            return []
        attributes = _attributes(ce)
        routes = [r for r in self._routes.values() if r.trigger.matches(attributes)]
        for route in routes:
            if route.pending >= self._max_queue:
                self.counters["rejected_busy"] += 1
                raise BrokerBusy(route.trigger.name)
        return routes

    @staticmethod
    def _rows(ce: CloudEvent, hops: int, routes: list[_Route]) -> list[NewDelivery]:
        event = to_json(ce)
        return [(r.trigger.name, event, hops) for r in routes]

    def _enqueue(self, ce: CloudEvent, hops: int, routes: list[_Route], seqs: list[int]) -> None:
        for route, seq in zip(routes, seqs, strict=True):
            route.pending += 1
            route.ready.put_nowait(_Delivery(seq, route, ce, hops))

    def _schedule(self, delivery: _Delivery, delay_s: float) -> None:
        if delay_s <= 0:
            delivery.route.ready.put_nowait(delivery)
            return
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timers.discard(timer)
            delivery.route.ready.put_nowait(delivery)

        timer = loop.call_later(delay_s, due)
        self._timers.add(timer)

    def _require_queue(self) -> DeliveryQueue:
        if self._queue is None:
            raise RuntimeError("the broker is not started")
        return self._queue

    async def _work(self, route: _Route, dispatcher: Dispatcher) -> None:
        while True:
            delivery = await route.ready.get()
            route.in_flight += 1
            try:
                await self._attempt(delivery, dispatcher)
            except Exception:  # a worker must survive any one event; it is retried
                log.exception("trigger %s: delivery %d crashed", route.trigger.name, delivery.seq)
                self._retry_or_give_up(delivery, Outcome(False, 500, error="broker error"))
            finally:
                route.in_flight -= 1

    async def _attempt(self, delivery: _Delivery, dispatcher: Dispatcher) -> None:
        route = delivery.route
        policy = route.policy
        url = policy.dead_letter_sink if delivery.dead_letter else route.trigger.subscriber
        if delivery.attempts > policy.retry:
            # Every attempt was begun and the last never ended: it killed the
            # process (a poison event). Give up as after any last failure.
            crashed = Outcome(False, 500, error="every attempt ended the broker's process")
            self._retry_or_give_up(delivery, crashed)
            return
        # Counted before it is dispatched: an attempt that kills the process counts.
        delivery.attempts += 1
        self._require_queue().begin(delivery.seq, delivery.attempts)
        outcome = await dispatcher.attempt(url or "", delivery.ce, policy.timeout_s)
        if outcome.ok and delivery.dead_letter:
            self.counters["dead_lettered"] += 1
            self._done(delivery)
            self._require_queue().remove(delivery.seq)
        elif outcome.ok:
            self._delivered(delivery, outcome)
        else:
            self._retry_or_give_up(delivery, outcome)

    def _delivered(self, delivery: _Delivery, outcome: Outcome) -> None:
        reply = outcome.reply
        routes: list[_Route] = []
        if reply is not None:
            _take_ttl(reply, 0)  # a reply's own TTL is not trusted
            self.counters["received"] += 1
            try:
                routes = self._matching(reply, delivery.hops - 1)
            except BrokerBusy:
                # Knative fails the delivery when the broker refuses its reply.
                failure = Outcome(False, 503, error="the broker could not take the reply")
                self._retry_or_give_up(delivery, failure)
                return
        rows = self._rows(reply, delivery.hops - 1, routes) if reply is not None and routes else []
        seqs = self._require_queue().complete(delivery.seq, rows)
        self._done(delivery)
        self.counters["delivered"] += 1
        if reply is not None:
            self.counters["replies"] += 1
            if routes:
                self._enqueue(reply, delivery.hops - 1, routes, seqs)

    def _retry_or_give_up(self, delivery: _Delivery, outcome: Outcome) -> None:
        route, policy, queue = delivery.route, delivery.route.policy, self._require_queue()
        if outcome.retryable and delivery.attempts <= policy.retry:
            self.counters["retries"] += 1
            delay = policy.delay(delivery.attempts)
            queue.failed(delivery.seq, delivery.attempts, time.time() + delay)
            log.info(
                "delivery of %s to %s failed (%s), attempt %d; next in %.2f s",
                delivery.ce["id"],
                route.trigger.name,
                outcome.error,
                delivery.attempts,
                delay,
            )
            self._schedule(delivery, delay)
            return
        if delivery.dead_letter:
            self.counters["dropped"] += 1
            log.error(
                "event %s lost: dead-letter sink %s failed: %s",
                delivery.ce["id"],
                policy.dead_letter_sink,
                outcome.error,
            )
            queue.remove(delivery.seq)
            self._done(delivery)
            return
        self.counters["failed"] += 1
        log.warning(
            "trigger %s: event %s not delivered to %s: %s",
            route.trigger.name,
            delivery.ce["id"],
            route.trigger.subscriber,
            outcome.error,
        )
        if not policy.dead_letter_sink:
            self.counters["dropped"] += 1
            queue.remove(delivery.seq)
            self._done(delivery)
            return
        dead = dead_letter_event(delivery.ce, route.trigger.subscriber, outcome)
        queue.dead_letter(delivery.seq, to_json(dead))
        delivery.ce, delivery.attempts, delivery.dead_letter = dead, 0, True
        self._schedule(delivery, 0.0)

    @staticmethod
    def _done(delivery: _Delivery) -> None:
        delivery.route.pending -= 1

    def status(self) -> dict[str, Any]:
        """Counters and per-trigger queue depth, for ``GET /status``."""
        return {
            "counters": dict(self.counters),
            "triggers": {
                r.trigger.name: {
                    "subscriber": r.trigger.subscriber,
                    "queued": r.pending - r.in_flight,
                    "in_flight": r.in_flight,
                }
                for r in self._routes.values()
            },
        }
