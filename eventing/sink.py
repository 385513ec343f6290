"""The broker client: posts kpipe events to ``K_SINK`` in binary mode.

Example:
    >>> from kpipe.settings import EventSettings
    >>> with HttpBrokerClient.from_settings(EventSettings(K_SINK="http://127.0.0.1:1")) as c:
    ...     c.url
    'http://127.0.0.1:1'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import httpx

from eventing.contract import Event
from eventing.errors import DeliveryFailed
from eventing.http import to_http
from kpipe.settings import EventSettings

log = logging.getLogger(__name__)

# What a broker ingress answers when it is briefly unable to take an event.
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})


class BrokerClient(Protocol):
    """Something that accepts kpipe events for the broker."""

    def send(self, event: Event) -> None:
        """Hand ``event`` to the broker; raise DeliveryFailed if it refuses."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial_s * factor**attempt``, capped at ``max_s``."""

    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = first retry)."""
        return float(min(self.max_s, self.initial_s * self.factor**attempt))


def is_retryable(status: int) -> bool:
    """True for the statuses worth another try (5xx, 404, 408, 409, 429)."""
    return status >= 500 or status in RETRYABLE_STATUSES


class HttpBrokerClient:
    """Posts events to a broker URL with one retry policy and explicit timeouts.

    Args:
        url: the broker ingress (``K_SINK``).
        timeout_s: timeout of each attempt (connect, read, write, pool).
        retries: how many times to retry after the first attempt.
        backoff: the delays between attempts.
        transport: an httpx transport, for tests.
        sleep: called with each delay, for tests.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff: Backoff | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport)

    @classmethod
    def from_settings(
        cls, settings: EventSettings, retries: int = 3, backoff: Backoff | None = None
    ) -> HttpBrokerClient:
        """A client for ``settings.sink``; DeliveryFailed if K_SINK is not set."""
        if not settings.sink:
            raise DeliveryFailed("K_SINK is not set: there is no broker to send events to")
        return cls(settings.sink, settings.timeout_s, retries, backoff)

    def send(self, event: Event) -> None:
        """Post ``event``; retry on connection errors, 5xx, 404, 408, 409 and 429.

        Raises:
            DeliveryFailed: the broker refused the event (any other status) or
                the retries ran out; ``status`` is the last HTTP status, if any.
        """
        headers, body = to_http(event)
        status: int | None = None
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff.delay(attempt - 1))
            try:
                response = self._client.post(self.url, headers=headers, content=body)
            except httpx.TransportError as exc:
                status, reason = None, f"{type(exc).__name__}: {exc}"
            else:
                status, reason = response.status_code, response.text[:200]
                if response.is_success:
                    return
                if not is_retryable(status):
                    break
            log.warning(
                "broker did not take event %s (attempt %d): %s %s",
                event.id,
                attempt + 1,
                status,
                reason,
            )
        raise DeliveryFailed(
            f"broker {self.url} did not accept event {event.id}: {status} {reason}".strip(),
            status=status,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
