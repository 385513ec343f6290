"""The broker client: posts kpipe events to ``K_SINK`` in binary mode.

Example:
    >>> from kpipe.core.settings import EventSettings
    >>> with HttpBrokerClient.from_settings(EventSettings(K_SINK="http://127.0.0.1:1")) as c:
    ...     c.url
    'http://127.0.0.1:1'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple, Protocol, Self

import httpx

from eventing.contract import Event
from eventing.errors import DeliveryFailed
from eventing.http import to_http
from kpipe.core.retry import Backoff, retrying
from kpipe.core.settings import EventSettings

log = logging.getLogger(__name__)

# What a broker ingress answers when it is briefly unable to take an event.
RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})


class BrokerClient(Protocol):
    """Something that accepts kpipe events for the broker."""

    def send(self, event: Event) -> None:
        """Hand ``event`` to the broker; raise DeliveryFailed if it refuses."""


def is_retryable(status: int) -> bool:
    """True for the statuses worth another try (5xx, 404, 408, 409, 429)."""
    return status >= 500 or status in RETRYABLE_STATUSES


class _Answer(NamedTuple):
    """What one post gave: the HTTP status (None: no answer) and why."""

    status: int | None
    reason: str

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def worth_retrying(self) -> bool:
        return not self.accepted and (self.status is None or is_retryable(self.status))

    def __str__(self) -> str:
        return f"{self.status or 'no answer'} {self.reason}".strip()


class HttpBrokerClient:
    """Posts events to a broker URL with kpipe's retry policy and explicit timeouts.

    Args:
        url: the broker ingress (``K_SINK``).
        timeout_s: timeout of each attempt (connect, read, write, pool).
        retries: how many times to retry after the first attempt.
        backoff: the waits between attempts (:class:`kpipe.core.retry.Backoff`).
        transport: an httpx transport, for tests.
        sleep: called with each wait, for tests.
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

        def post() -> _Answer:
            try:
                response = self._client.post(self.url, headers=headers, content=body)
            except httpx.TransportError as exc:
                return _Answer(None, f"{type(exc).__name__}: {exc}")
            return _Answer(response.status_code, response.text[:200])

        policy = retrying(
            f"event {event.id} to broker {self.url}",
            self.backoff,
            attempts=self.retries + 1,
            on_result=lambda answer: answer.worth_retrying,
            sleep=self._sleep,
            logger=log,
        )
        answer: _Answer = policy(post)
        if not answer.accepted:
            raise DeliveryFailed(
                f"broker {self.url} did not accept event {event.id}: {answer}",
                status=answer.status,
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
