"""The one retry policy: backoff, stops, predicates and logging, on a fake clock."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from kpipe.core.retry import Backoff, retrying


class FakeTime:
    """A clock that only moves when the policy sleeps or an attempt takes time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A callable that raises or returns the scripted outcomes in turn, then the last."""

    def __init__(self, *outcomes: object, takes_s: float = 0.0, time: FakeTime | None = None):
        self.outcomes = outcomes
        self.calls = 0
        self.started_at: list[float] = []
        self._takes_s = takes_s
        self._time = time

    def __call__(self) -> object:
        if self._time is not None:
            self.started_at.append(self._time.now)
            self._time.now += self._takes_s
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


STEADY = Backoff(initial_s=0.5, factor=2.0, max_s=3.0, jitter=0)


@pytest.mark.parametrize(
    ("retry", "expected"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (10, 3.0), (5000, 3.0)]
)
def test_backoff_doubles_up_to_its_cap(retry: int, expected: float) -> None:
    assert STEADY.delay(retry) == expected


def test_jitter_takes_at_most_its_fraction_off_and_varies() -> None:
    backoff = Backoff(initial_s=1.0, factor=2.0, max_s=8.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(2, rng) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "fields",
    [
        {"initial_s": -1.0},
        {"max_s": -0.1},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_backoff_refuses_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**fields)


def test_retries_the_named_exceptions_with_the_backoff_then_succeeds() -> None:
    time = FakeTime()
    call = Script(ConnectionResetError("reset"), ConnectionResetError("reset"), "ok")
    policy = retrying("op", STEADY, attempts=5, on_exception=(ConnectionError,), sleep=time.sleep)
    assert policy(call) == "ok"
    assert (call.calls, time.sleeps) == (3, [0.5, 1.0])


def test_an_exception_it_was_not_asked_to_retry_propagates_at_once() -> None:
    time = FakeTime()
    call = Script(PermissionError("no"), "ok")
    policy = retrying("op", STEADY, attempts=5, on_exception=(ConnectionError,), sleep=time.sleep)
    with pytest.raises(PermissionError, match="no"):
        policy(call)
    assert (call.calls, time.sleeps) == (1, [])


def test_a_predicate_chooses_which_exceptions_to_retry() -> None:
    time = FakeTime()
    call = Script(OSError(104, "reset"), OSError(111, "refused"), "ok")
    policy = retrying(
        "op",
        STEADY,
        attempts=5,
        on_exception=lambda exc: isinstance(exc, OSError) and exc.errno == 104,
        sleep=time.sleep,
    )
    with pytest.raises(OSError, match="refused"):
        policy(call)
    assert call.calls == 2


def test_when_the_attempts_run_out_the_last_exception_is_raised_not_a_retry_error() -> None:
    time = FakeTime()
    call = Script(TimeoutError("first"), TimeoutError("last"))
    policy = retrying("op", STEADY, attempts=2, on_exception=(TimeoutError,), sleep=time.sleep)
    with pytest.raises(TimeoutError, match="last"):
        policy(call)
    assert call.calls == 2


def test_results_can_ask_for_another_attempt_and_the_last_is_returned() -> None:
    time = FakeTime()
    call = Script(503, 503, 503, 503)
    policy = retrying(
        "op", STEADY, attempts=4, on_result=lambda status: status >= 500, sleep=time.sleep
    )
    assert policy(call) == 503
    assert (call.calls, time.sleeps) == (4, [0.5, 1.0, 2.0])


def test_a_deadline_cuts_the_last_wait_and_no_attempt_starts_after_it() -> None:
    time = FakeTime()
    call = Script(ConnectionError("down"), takes_s=0.5, time=time)
    policy = retrying(
        "op",
        STEADY,
        deadline_s=2.0,
        on_exception=(ConnectionError,),
        sleep=time.sleep,
        clock=time.clock,
    )
    with pytest.raises(ConnectionError):
        policy(call)
    # attempts at 0 and 1.0 (0.5 + 0.5), then 2.0: the second wait is cut from 1.0 to 0.5
    assert call.started_at == [0.0, 1.0, 2.0]
    assert time.sleeps == [0.5, 0.5]


def test_the_deadline_counts_from_each_call_s_first_attempt() -> None:
    time = FakeTime()
    policy = retrying(
        "op",
        STEADY,
        deadline_s=1.0,
        on_exception=(ConnectionError,),
        sleep=time.sleep,
        clock=time.clock,
    )
    first = Script(ConnectionError("down"), time=time)
    with pytest.raises(ConnectionError):
        policy(first)
    time.now += 100.0  # a later call on the same policy gets its own deadline
    second = Script(ConnectionError("down"), "ok", time=time)
    assert policy(second) == "ok"


def test_attempts_and_deadline_stop_at_whichever_comes_first() -> None:
    time = FakeTime()
    call = Script(ConnectionError("down"), time=time)
    policy = retrying(
        "op",
        STEADY,
        attempts=2,
        deadline_s=60.0,
        on_exception=(ConnectionError,),
        sleep=time.sleep,
        clock=time.clock,
    )
    with pytest.raises(ConnectionError):
        policy(call)
    assert call.calls == 2


def test_a_stop_flag_ends_the_retries() -> None:
    stopping = threading.Event()
    time = FakeTime()

    def fail() -> bool:
        if len(time.sleeps) == 2:
            stopping.set()
        return False

    policy = retrying(
        "op", STEADY, on_result=lambda ok: not ok, stop_when=stopping.is_set, sleep=time.sleep
    )
    assert policy(fail) is False
    assert len(time.sleeps) == 2


def test_each_retry_is_logged_with_what_failed_and_the_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    call = Script(ConnectionResetError("peer reset"), ConnectionResetError("peer reset"), "ok")
    logger = logging.getLogger("tests.retry")
    policy = retrying(
        "triton infer",
        STEADY,
        attempts=3,
        on_exception=(ConnectionError,),
        sleep=time.sleep,
        logger=logger,
    )
    with caplog.at_level(logging.WARNING, logger="tests.retry"):
        policy(call)
    assert [r.getMessage() for r in caplog.records] == [
        "triton infer: attempt 1 failed (ConnectionResetError: peer reset); retrying in 0.50 s",
        "triton infer: attempt 2 failed (ConnectionResetError: peer reset); retrying in 1.00 s",
    ]


@pytest.mark.parametrize("attempts", [None, 0])
def test_a_policy_needs_a_stop(attempts: int | None) -> None:
    with pytest.raises(ValueError, match="op"):
        retrying("op", STEADY, attempts=attempts)
