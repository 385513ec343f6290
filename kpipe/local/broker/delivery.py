"""Delivery of one event to one subscriber, Knative-style: one attempt, and what it means.

Success is a 2xx. A 200 (or other 2xx but 202) with a CloudEvent in it is a
reply, handed back to the broker; one with any other non-empty body is an
error, as Knative does (it turns it into a 502 and retries: eventing issue
6394). Connection errors, timeouts, 404, 408, 409, 429 and 5xx are retried
(:class:`RetryPolicy`: ``backoffDelay * 2**n`` exponential or
``backoffDelay * n`` linear before retry ``n``); after ``retry`` retries, or
at once for any other status, the event goes to the dead-letter sink with the
``knativeerror*`` extensions (:func:`dead_letter_event`). The broker
(:mod:`kpipe.local.broker.core`) keeps count of the attempts, durably.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from cloudevents.http import CloudEvent

from eventing.errors import MalformedEvent
from eventing.http import encode_binary, is_cloudevent, parse_cloudevent
from eventing.sink import is_retryable
from kpipe.local.broker.triggers import DeliverySpec

log = logging.getLogger(__name__)

ERROR_DEST = "knativeerrordest"
ERROR_CODE = "knativeerrorcode"
ERROR_DATA = "knativeerrordata"
ERROR_DATA_MAX_BYTES = 1024  # Knative's KnativeErrorDataExtensionMaxLength
BAD_REPLY_STATUS = 502  # what Knative makes of a 2xx whose body is not an event


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


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """What a subscriber's HTTP answer means for the delivery."""
    if not 200 <= status < 300:
        return Outcome(False, status, body, error=f"HTTP {status}")
    if status == 202 or (not body and not is_cloudevent(headers)):
        # The data-plane contract: a 202 is never processed as a reply.
        return Outcome(True, status)
    if not is_cloudevent(headers):
        return Outcome(False, BAD_REPLY_STATUS, body, error="2xx reply body is not a CloudEvent")
    try:
        reply = parse_cloudevent(headers, body)
    except MalformedEvent as exc:
        return Outcome(False, BAD_REPLY_STATUS, body, error=f"invalid reply event: {exc}")
    return Outcome(True, status, reply=reply)


# An in-process subscriber: takes the event, answers like an HTTP one would.
LocalSubscriber = Callable[[CloudEvent], Awaitable[Outcome]]


class Dispatcher:
    """Makes one delivery attempt to a subscriber: over HTTP, or in process.

    Args:
        session: the broker's aiohttp session (owned by the broker): keep-alive
            connections, and a C HTTP parser, which costs a fraction of a pure
            Python client's CPU per delivery.
        local: subscribers in this process, by the URI their triggers name;
            an event for one of them is a function call, not an HTTP request.
    """

    def __init__(
        self, session: aiohttp.ClientSession, local: Mapping[str, LocalSubscriber] | None = None
    ) -> None:
        self._session = session
        self._local = dict(local or {})

    async def attempt(self, url: str, ce: CloudEvent, timeout_s: float) -> Outcome:
        """Deliver ``ce`` to ``url`` once; what came of it."""
        local = self._local.get(url)
        if local is not None:
            try:
                return await asyncio.wait_for(local(ce), timeout_s)
            except TimeoutError:
                return Outcome(False, error=f"no answer in {timeout_s} s")
            except Exception as exc:  # a subscriber's bug is a 500, as over HTTP
                log.exception("in-process subscriber %s failed on %s", url, ce["id"])
                return Outcome(False, 500, error=f"{type(exc).__name__}: {exc}")
        headers, body = encode_binary(ce)
        # Brokers must say they take replies (Knative data-plane contract).
        headers["prefer"] = "reply"
        try:
            async with self._session.post(
                url, headers=headers, data=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                answer = await response.read()
                return classify(response.status, response.headers, answer)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # ValueError: a subscriber URI aiohttp cannot even parse.
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")


def dead_letter_event(ce: CloudEvent, url: str, failure: Outcome) -> CloudEvent:
    """The event sent to a dead-letter sink: ``ce`` with Knative's ``knativeerror*`` extensions."""
    attributes = dict(ce.get_attributes())
    attributes[ERROR_DEST] = url
    if failure.status is not None:
        attributes[ERROR_CODE] = str(failure.status)
    if failure.body:
        attributes[ERROR_DATA] = base64.b64encode(failure.body[:ERROR_DATA_MAX_BYTES]).decode()
    return CloudEvent(attributes, ce.data)
