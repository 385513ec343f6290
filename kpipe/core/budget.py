"""The delivery budget: retries, backoff, the retry-for window, the re-drive and the deadline.

One home for the numbers that must fit together (``tests/kpipe/core/test_budget.py``
checks the inequalities that tie them):

- a part answers 503 to a retryable failure (Triton or the store down) while
  the request is younger than :data:`RETRY_FOR_S`, then ``step.failed``: so
  the broker's retries of a part's trigger must last longer than that, and
  the part, not the broker, ends the retries;
- the router re-sends a request with no answer after :data:`REDRIVE_AFTER_S`:
  after every redelivery the broker may still make, so a re-drive only
  recovers an event that was really lost;
- a run with no progress for :data:`RUN_DEADLINE_S` fails, swept every
  :data:`SWEEP_INTERVAL_S`.

``kpipe up`` (the local broker), the generated Triggers and the settings'
defaults all read them from here.

Example:
    >>> round(CLUSTER_PART.shortest_s, 1), round(CLUSTER_PART.longest_s, 1)
    (204.6, 409.2)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retries:
    """A trigger's exponential retries: ``retry`` of them, ``backoff_delay_s * 2**n`` apart."""

    retry: int
    backoff_delay_s: float

    def _window_s(self, first: int) -> float:
        return float(sum(self.backoff_delay_s * 2**n for n in range(first, first + self.retry)))

    @property
    def shortest_s(self) -> float:
        """How long the retries last when the first delay is ``backoff_delay_s * 2**0``."""
        return self._window_s(0)

    @property
    def longest_s(self) -> float:
        """How long they last when it is ``backoff_delay_s * 2**1`` (brokers differ on ``n``)."""
        return self._window_s(1)

    @property
    def iso_delay(self) -> str:
        """``backoff_delay_s`` as the ISO 8601 duration a Trigger's ``backoffDelay`` takes."""
        return f"PT{self.backoff_delay_s:g}S"


# A part's retryable failure is answered 503 for this long (KPIPE_RETRY_FOR_S).
RETRY_FOR_S = 180.0
# The parts' Triggers in the cluster (Knative counts n from 0 or 1 by broker class).
CLUSTER_PART = Retries(retry=10, backoff_delay_s=0.2)
# The local broker, which counts n from 1 (kpipe/local/broker/delivery.py).
LOCAL_PART = Retries(retry=9, backoff_delay_s=0.2)
LOCAL_ROUTER = Retries(retry=5, backoff_delay_s=0.2)
# Steps a part runs at once: it answers 429 beyond (containerConcurrency in the
# cluster; the local broker's delivery concurrency per part trigger).
PART_CONCURRENCY = 4
# How long one delivery may take before the broker counts it failed.
DELIVERY_TIMEOUT_S = 30.0
# A step request with no answer after this long is sent again (KPIPE_REDRIVE_AFTER_S).
REDRIVE_AFTER_S = 480.0
# A run with no progress for this long fails (KPIPE_RUN_DEADLINE_S), swept this often.
RUN_DEADLINE_S = 1800.0
SWEEP_INTERVAL_S = 15.0
