"""Delivery of one event to one subscriber, Knative-style: retries, backoff, dead letter.

Success is a 2xx. A 200 (or other 2xx but 202) with a CloudEvent in it is a
reply, handed back to the broker; one with any other non-empty body is an
error, as Knative does (it turns it into a 502 and retries: eventing issue
6394). Connection errors, timeouts, 404, 408, 409, 429 and 5xx are retried
with ``backoffDelay * 2**n`` (exponential) or ``backoffDelay * n`` (linear)
before retry ``n``; after ``retry`` retries, or at once for any other status,
the event goes to the dead-letter sink with the ``knativeerror*`` extensions.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from cloudevents.http import CloudEvent

from eventing.broker.triggers import DeliverySpec
from eventing.errors import MalformedEvent
from eventing.http import encode_binary, is_cloudevent, parse_cloudevent
from eventing.sink import is_retryable

log = logging.getLogger(__name__)

ERROR_DEST = "knativeerrordest"
ERROR_CODE = "knativeerrorcode"
ERROR_DATA = "knativeerrordata"
ERROR_DATA_MAX_BYTES = 1024  # Knative's KnativeErrorDataExtensionMaxLength
BAD_REPLY_STATUS = 502  # what Knative makes of a 2xx whose body is not an event

# Hands a reply event back to the broker; False if it could not take it.
ReplyHandler = Callable[[CloudEvent], Awaitable[bool]]


@dataclass(frozen=True)
class RetryPolicy:
    """A fully resolved delivery spec."""

    retry: int
    backoff_policy: str
    backoff_delay_s: float
    timeout_s: float
    dead_letter_sink: str | None = None

    @classmethod
    def from_spec(cls, spec: DeliverySpec) -> RetryPolicy:
        """From a spec whose fields are all set (``spec.over(DEFAULT_DELIVERY)``)."""
        return cls(
            retry=spec.retry or 0,
            backoff_policy=spec.backoff_policy or "exponential",
            backoff_delay_s=spec.backoff_delay_s or 0.0,
            timeout_s=spec.timeout_s or 30.0,
            dead_letter_sink=spec.dead_letter_sink,
        )

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 is the first retry)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay_s * retry_number
        return float(self.backoff_delay_s * 2**retry_number)


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: success, a reply, or a failure with its status."""

    ok: bool
    status: int | None = None
    body: bytes = b""
    reply: CloudEvent | None = None
    error: str = ""

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.status is None or is_retryable(self.status))


def _classify(response: httpx.Response) -> Outcome:
    status, body = response.status_code, response.content
    if not response.is_success:
        return Outcome(False, status, body, error=f"HTTP {status}")
    if status == 202 or (not body and not is_cloudevent(response.headers)):
        # The data-plane contract: a 202 is never processed as a reply.
        return Outcome(True, status)
    if not is_cloudevent(response.headers):
        return Outcome(False, BAD_REPLY_STATUS, body, error="2xx reply body is not a CloudEvent")
    try:
        reply = parse_cloudevent(response.headers, body)
    except MalformedEvent as exc:
        return Outcome(False, BAD_REPLY_STATUS, body, error=f"invalid reply event: {exc}")
    return Outcome(True, status, reply=reply)


class Dispatcher:
    """Sends events to subscribers and dead-letter sinks with one HTTP client.

    Args:
        client: the broker's httpx client (owned by the broker).
        counters: the broker's counters, updated here.
    """

    def __init__(self, client: httpx.AsyncClient, counters: Counter[str]) -> None:
        self._client = client
        self._counters = counters

    async def _attempt(self, url: str, ce: CloudEvent, timeout_s: float) -> Outcome:
        headers, body = encode_binary(ce)
        # Brokers must say they take replies (Knative data-plane contract).
        headers["prefer"] = "reply"
        try:
            response = await self._client.post(
                url, headers=headers, content=body, timeout=timeout_s
            )
        except httpx.TransportError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")
        return _classify(response)

    async def _send(
        self, url: str, ce: CloudEvent, policy: RetryPolicy, on_reply: ReplyHandler | None
    ) -> Outcome:
        outcome = Outcome(False)
        for attempt in range(policy.retry + 1):
            if attempt:
                self._counters["retries"] += 1
                await asyncio.sleep(policy.delay(attempt))
            outcome = await self._attempt(url, ce, policy.timeout_s)
            refused = (
                outcome.ok
                and outcome.reply is not None
                and on_reply is not None
                and not await on_reply(outcome.reply)
            )
            if refused:
                # Knative fails the delivery when the broker refuses its reply.
                outcome = Outcome(False, 503, error="the broker could not take the reply")
            if outcome.ok or not outcome.retryable:
                return outcome
            log.info(
                "delivery of %s to %s failed (%s), attempt %d",
                ce["id"],
                url,
                outcome.error,
                attempt + 1,
            )
        return outcome

    async def deliver(
        self, trigger: str, url: str, ce: CloudEvent, policy: RetryPolicy, on_reply: ReplyHandler
    ) -> bool:
        """Deliver ``ce`` to ``url`` under ``policy``; dead-letter it if that fails.

        Returns:
            True if the subscriber took the event.
        """
        outcome = await self._send(url, ce, policy, on_reply)
        if outcome.ok:
            self._counters["delivered"] += 1
            if outcome.reply is not None:
                self._counters["replies"] += 1
            return True
        self._counters["failed"] += 1
        log.warning(
            "trigger %s: event %s not delivered to %s: %s", trigger, ce["id"], url, outcome.error
        )
        if policy.dead_letter_sink:
            await self._dead_letter(url, ce, policy, outcome)
        else:
            self._counters["dropped"] += 1
        return False

    async def _dead_letter(
        self, url: str, ce: CloudEvent, policy: RetryPolicy, failure: Outcome
    ) -> None:
        attributes = dict(ce.get_attributes())
        attributes[ERROR_DEST] = url
        if failure.status is not None:
            attributes[ERROR_CODE] = str(failure.status)
        if failure.body:
            attributes[ERROR_DATA] = base64.b64encode(failure.body[:ERROR_DATA_MAX_BYTES]).decode()
        dead = CloudEvent(attributes, ce.data)
        sink = policy.dead_letter_sink or ""
        outcome = await self._send(sink, dead, policy, on_reply=None)
        if outcome.ok:
            self._counters["dead_lettered"] += 1
        else:
            self._counters["dropped"] += 1
            log.error(
                "event %s lost: dead-letter sink %s failed: %s", ce["id"], sink, outcome.error
            )
