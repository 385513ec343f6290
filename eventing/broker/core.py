"""The local broker: bounded per-trigger queues and workers over one HTTP client.

Example:
    >>> async def demo() -> dict[str, int]:
    ...     async with Broker(BrokerConfig()) as broker:
    ...         return broker.status()["counters"]
    >>> import asyncio; asyncio.run(demo())["received"]
    0
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
from cloudevents.http import CloudEvent

from eventing.broker.delivery import Dispatcher, RetryPolicy
from eventing.broker.errors import BrokerBusy
from eventing.broker.triggers import BrokerConfig, Trigger

log = logging.getLogger(__name__)

TTL_EXTENSION = "knativebrokerttl"


@dataclass
class _Route:
    """One trigger's queue, workers and resolved delivery policy."""

    trigger: Trigger
    policy: RetryPolicy
    queue: asyncio.Queue[tuple[CloudEvent, int]]
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    in_flight: int = 0


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
    """Routes CloudEvents to the subscribers of matching triggers.

    Args:
        config: triggers, default delivery spec and TTL.
        concurrency: deliveries in flight per trigger (its worker count).
        max_queue: events waiting per trigger before the ingress answers 503.
        drain_timeout_s: how long :meth:`stop` waits for queued deliveries.
    """

    def __init__(
        self,
        config: BrokerConfig,
        concurrency: int = 32,
        max_queue: int = 10_000,
        drain_timeout_s: float = 5.0,
    ) -> None:
        self.config = config
        self.counters: Counter[str] = Counter(
            {k: 0 for k in ("received", "delivered", "failed", "dead_lettered", "dropped")}
        )
        self._concurrency = concurrency
        self._drain_timeout_s = drain_timeout_s
        self._routes = [
            _Route(
                t, RetryPolicy.from_spec(t.delivery.over(config.delivery)), asyncio.Queue(max_queue)
            )
            for t in config.triggers
        ]
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Open the HTTP client and start the workers."""
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        dispatcher = Dispatcher(self._client, self.counters)
        for route in self._routes:
            route.workers = [
                asyncio.create_task(self._work(route, dispatcher), name=f"{route.trigger.name}-{i}")
                for i in range(self._concurrency)
            ]

    async def stop(self) -> None:
        """Wait up to ``drain_timeout_s`` for queued deliveries, cancel the rest, close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(r.queue.join() for r in self._routes)), self._drain_timeout_s
            )
        workers = [w for r in self._routes for w in r.workers]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        abandoned = sum(r.queue.qsize() for r in self._routes)
        if abandoned:
            log.warning("broker stopped with %d undelivered event(s)", abandoned)
        if self._client is not None:
            await self._client.aclose()

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
        """Queue ``ce`` for every matching trigger, without waiting.

        Args:
            ce: the event (its TTL extension is taken off it).
            ttl: the hops left; None reads the event's ``knativebrokerttl``.

        Returns:
            How many triggers matched.

        Raises:
            BrokerBusy: a matching trigger's queue is full (nothing was queued).
        """
        hops = _take_ttl(ce, self.config.ttl) if ttl is None else ttl
        self.counters["received"] += 1
        if hops <= 0:
            self.counters["dropped_ttl"] += 1
            log.warning("event %s dropped: %s reached 0 (a reply loop?)", ce["id"], TTL_EXTENSION)
            return 0
        attributes = _attributes(ce)
        routes = [r for r in self._routes if r.trigger.matches(attributes)]
        for route in routes:
            if route.queue.full():
                self.counters["rejected_busy"] += 1
                raise BrokerBusy(route.trigger.name)
        for route in routes:
            route.queue.put_nowait((ce, hops))
        return len(routes)

    async def _work(self, route: _Route, dispatcher: Dispatcher) -> None:
        while True:
            ce, hops = await route.queue.get()
            route.in_flight += 1

            async def on_reply(reply: CloudEvent, hops: int = hops) -> bool:
                _take_ttl(reply, 0)  # a reply's own TTL is not trusted
                try:
                    self.ingest(reply, ttl=hops - 1)
                except BrokerBusy:
                    return False
                return True

            try:
                await dispatcher.deliver(
                    route.trigger.name, route.trigger.subscriber, ce, route.policy, on_reply
                )
            except Exception:  # a worker must survive any one event
                log.exception("trigger %s: delivery of %s crashed", route.trigger.name, ce["id"])
                self.counters["failed"] += 1
            finally:
                route.in_flight -= 1
                route.queue.task_done()

    def status(self) -> dict[str, Any]:
        """Counters and per-trigger queue depth, for ``GET /status``."""
        return {
            "counters": dict(self.counters),
            "triggers": {
                r.trigger.name: {
                    "subscriber": r.trigger.subscriber,
                    "queued": r.queue.qsize(),
                    "in_flight": r.in_flight,
                }
                for r in self._routes
            },
        }
