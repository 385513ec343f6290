"""A broker client for code that runs in the broker's own process.

The router hosts the local broker under ``kpipe up``: its sweeper, backfills
and fan-outs hand events to the broker with a call instead of an HTTP post
to itself. The event is stored in the broker's durable queue before
:meth:`InProcessClient.send` returns, as the ingress would have before its 202.

Example:
    >>> client = InProcessClient(broker, loop)  # doctest: +SKIP
    >>> client.send(event)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio

from eventing.contract import Event
from eventing.errors import DeliveryFailed
from eventing.http import to_cloudevent
from kpipe.local.broker.core import Broker
from kpipe.local.broker.errors import BrokerBusy


class InProcessClient:
    """Sends kpipe events to a broker running on ``loop``, from any other thread.

    Args:
        broker: the broker (started by its owner).
        loop: the event loop the broker runs on.
        timeout_s: how long :meth:`send` waits for the broker to store the event.
    """

    def __init__(
        self, broker: Broker, loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0
    ) -> None:
        self._broker = broker
        self._loop = loop
        self._timeout_s = timeout_s

    def send(self, event: Event) -> None:
        """Store ``event`` in the broker's queue for every matching trigger.

        Raises:
            DeliveryFailed: the broker is busy, stopped, or did not answer in time.
        """
        ce = to_cloudevent(event)

        async def ingest() -> int:
            return self._broker.ingest(ce)

        try:
            asyncio.run_coroutine_threadsafe(ingest(), self._loop).result(self._timeout_s)
        except BrokerBusy as exc:
            raise DeliveryFailed(exc.message, status=503) from None
        except (TimeoutError, RuntimeError) as exc:
            raise DeliveryFailed(f"the local broker did not take {event.id}: {exc}") from None

    def close(self) -> None:
        """Nothing to close: the broker's owner stops it."""
