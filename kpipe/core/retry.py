"""The one retry policy of kpipe's clients, on tenacity.

Every client that tries again takes its waits from a :class:`Backoff` and
its loop from :func:`retrying`: exponential backoff with a cap and jitter, a
stop by attempts and/or by deadline, the caller's own idea of what is worth
another try, and one log line per retry. Its users: the broker client
(``eventing/sink.py``), the S3 webhook notifier, the inference client's
retry of a reset connection, and the supervisor's restart delays. The local
broker alone keeps Knative's delivery formula (``kpipe/local/broker``): that is
a contract it reproduces, not a client's choice.

Example:
    >>> calls = []
    >>> def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionResetError("reset by peer")
    ...     return "pong"
    >>> policy = retrying(
    ...     "ping", Backoff(initial_s=0.001), attempts=5, on_exception=(ConnectionError,)
    ... )
    >>> (policy(flaky), len(calls))
    ('pong', 3)
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap and jitter: the waits between attempts.

    The wait before retry ``n`` (0 is the first retry) is at most
    ``min(max_s, initial_s * factor**n)``; jitter takes a random part of up to
    ``jitter`` (a fraction) off it, so the cap holds and clients that failed
    together do not all come back at the same instant.

    Example:
        >>> [Backoff(initial_s=1.0, max_s=5.0, jitter=0).delay(n) for n in range(4)]
        [1.0, 2.0, 4.0, 5.0]
    """

    initial_s: float = 0.1
    factor: float = 2.0
    max_s: float = 5.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < 0:
            raise ValueError(f"backoff delays must not be negative: {self}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1: {self}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter is a fraction in [0, 1]: {self}")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry ``retry`` (0 = the first): the un-jittered delay."""
        try:
            raw = self.initial_s * self.factor**retry
        except OverflowError:
            raw = math.inf
        return float(min(self.max_s, raw))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``retry`` (0 = the first), with its jitter drawn from ``rng``."""
        ceiling = self.ceiling(retry)
        if not self.jitter:
            return ceiling
        draw = rng.random() if rng is not None else random.random()
        return ceiling - ceiling * self.jitter * draw


def retrying(
    what: str,
    backoff: Backoff,
    *,
    attempts: int | None = None,
    deadline_s: float | None = None,
    on_exception: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = (),
    on_result: Callable[[Any], bool] | None = None,
    stop_when: Callable[[], object] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    logger: logging.Logger = log,
) -> tenacity.Retrying:
    """The retry loop of one kind of call: a configured ``tenacity.Retrying``.

    Call the result with the function and its arguments:
    ``retrying(...)(fn, *args)``. An outcome that no predicate matches ends
    the loop at once. When a stop ends it, the last attempt's outcome is the
    call's: its exception is raised (never tenacity's ``RetryError``), or its
    result returned, so callers handle one attempt's outcomes only.

    Args:
        what: names the call in the warning logged before each retry.
        backoff: the waits between attempts.
        attempts: stop after this many attempts in all (the first included).
        deadline_s: stop once this long has passed since the first attempt
            began; the last wait is cut short so no attempt starts after it.
        on_exception: the exception types worth another attempt, or a
            predicate of the exception; any other exception propagates.
        on_result: a predicate of the returned value that asks for another attempt.
        stop_when: stop as well once this returns true (a shutdown flag).
        sleep: how to wait (``threading.Event.wait`` makes the waits interruptible).
        clock: the monotonic clock that measures ``deadline_s``.
        rng: the source of jitter (``random`` by default).
        logger: where the retries are logged.

    Raises:
        ValueError: no stop is given (attempts, deadline_s or stop_when), or
            ``attempts`` is below 1.
    """
    if attempts is None and deadline_s is None and stop_when is None:
        raise ValueError(f"{what}: a retry policy needs a stop (attempts, deadline or flag)")
    if attempts is not None and attempts < 1:
        raise ValueError(f"{what}: attempts must be at least 1, not {attempts}")
    # Imported here: a part's cold start should not pay for it before it retries.
    import tenacity

    started = _FirstAttempt(clock)
    stops: list[Callable[[tenacity.RetryCallState], bool]] = []
    if attempts is not None:
        stops.append(tenacity.stop_after_attempt(attempts))
    if deadline_s is not None:
        limit = deadline_s
        stops.append(lambda state: started.elapsed(state) >= limit)
    if stop_when is not None:
        flag = stop_when
        stops.append(lambda _: bool(flag()))

    def wait(state: tenacity.RetryCallState) -> float:
        delay = backoff.delay(state.attempt_number - 1, rng)
        if deadline_s is not None:
            delay = min(delay, max(0.0, deadline_s - started.elapsed(state)))
        return delay

    def pause(seconds: float) -> None:
        sleep(seconds)

    retry: tenacity.retry_base = tenacity.retry_if_exception(_exception_predicate(on_exception))
    if on_result is not None:
        retry = retry | tenacity.retry_if_result(on_result)
    return tenacity.Retrying(
        sleep=pause,
        stop=lambda state: any(check(state) for check in stops),
        wait=wait,
        retry=retry,
        before=started.record,
        before_sleep=_RetryLog(what, logger),
        retry_error_callback=_last_outcome,
    )


def _exception_predicate(
    on_exception: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> Callable[[BaseException], bool]:
    if isinstance(on_exception, tuple):
        kinds = on_exception
        return lambda exc: isinstance(exc, kinds)
    return on_exception


class _FirstAttempt:
    """When each call's first attempt began, by the policy's clock (for its deadline)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # One Retrying may serve concurrent calls; each call has its own state.
        self._started: weakref.WeakKeyDictionary[tenacity.RetryCallState, float] = (
            weakref.WeakKeyDictionary()
        )

    def record(self, state: tenacity.RetryCallState) -> None:
        if state.attempt_number == 1:
            with self._lock:
                self._started[state] = self._clock()

    def elapsed(self, state: tenacity.RetryCallState) -> float:
        with self._lock:
            started = self._started.get(state)
        return 0.0 if started is None else self._clock() - started


class _RetryLog:
    """Logs each retry: what failed, how, and how long until the next attempt."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what
        self._logger = logger

    def __call__(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            exc = outcome.exception()
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = str(outcome.result())
        self._logger.warning(
            "%s: attempt %d failed (%s); retrying in %.2f s",
            self._what,
            state.attempt_number,
            reason,
            state.upcoming_sleep,
        )


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    """The last attempt's result, or its exception raised: what the caller gets at a stop."""
    if state.outcome is None:
        raise RuntimeError("a retry stopped before any attempt")
    return state.outcome.result()
