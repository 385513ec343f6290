"""Pure arithmetic on the benchmark's timestamps: per-step times, rates, the legs of a hop.

Every time here is seconds since the epoch, from one machine's clock: the
bench client's ``time.time()``, the router's run view, a part's log line,
or the date a Celery result was stored.

Example:
    >>> per_step_ms(10.0, 10.25, 10)
    25.0
    >>> steps_per_s([(10.0, 10.5), (10.1, 11.0)], 10)
    20.0
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# Python's logging prints times cut to the millisecond: the true time is, on
# average, half a millisecond later than the one printed.
_LOG_ROUNDING_S = 0.0005
_LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"
DONE_MARK = ": step done in "


def per_step_ms(started: float, ended: float, steps: int) -> float:
    """The time one chain took, per step, in ms: ``(ended - started) / steps``.

    Raises:
        ValueError: ``steps`` is not positive or the chain ended before it started.
    """
    if steps <= 0:
        raise ValueError(f"a chain has at least one step, not {steps}")
    if ended < started:
        raise ValueError(f"ended ({ended}) before it started ({started})")
    return (ended - started) * 1000.0 / steps


def steps_per_s(chains: Sequence[tuple[float, float]], steps: int) -> float:
    """Steps per second of ``chains`` (start, end): their steps over first start to last end.

    Raises:
        ValueError: no chains, or they took no time at all.
    """
    if not chains:
        raise ValueError("no chains")
    wall = max(end for _, end in chains) - min(start for start, _ in chains)
    if wall <= 0:
        raise ValueError("the chains took no time")
    return len(chains) * steps / wall


@dataclass(frozen=True)
class Hop:
    """One hop of a routed chain, split where a part's log line splits it (ms).

    Attributes:
        total: the router's request of step i to its request of step i+1 (or the
            run's end), less the part's own time in ``run_request``.
        request: the router's request to the start of the part's ``run_request``
            (router commit, broker queue and delivery, HTTP, the part's framing);
            None when the part's log line was not found.
        reply: the end of ``run_request`` to the router handling the completion
            (the part's reply, broker, the router's event handling); None likewise.
    """

    total: float
    request: float | None
    reply: float | None


def hops(
    marks: Sequence[float], durations_ms: Sequence[float], done: Sequence[float | None]
) -> list[Hop]:
    """The hops of one run of a chain.

    Args:
        marks: the router's ``requested_at`` of each step, then the run's ``finished_at``.
        durations_ms: each step's time inside ``run_request`` (from its reply).
        done: when each step's ``run_request`` ended (from the part's log), or None.

    Raises:
        ValueError: the lengths do not match.
    """
    if not (len(marks) == len(durations_ms) + 1 == len(done) + 1):
        raise ValueError("need one mark more than steps, and one duration and done per step")
    found = []
    for i, (duration, end) in enumerate(zip(durations_ms, done, strict=True)):
        total = (marks[i + 1] - marks[i]) * 1000.0 - duration
        if end is None:
            found.append(Hop(total, None, None))
            continue
        request = (end - marks[i]) * 1000.0 - duration
        found.append(Hop(total, request, (marks[i + 1] - end) * 1000.0))
    return found


def done_times(lines: Iterable[str]) -> dict[tuple[str, str], float]:
    """When each (run, step) finished ``run_request``, from a part's JSON log lines.

    A part logs ``<function>: step done in <ms> ms -> <output>`` right after
    ``run_request`` returns; its ``time`` is local time, cut to the ms.
    Lines that are not JSON, or not that message, are skipped.
    """
    found: dict[tuple[str, str], float] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or DONE_MARK not in str(record.get("message", "")):
            continue
        run, step, stamp = record.get("run"), record.get("step"), record.get("time")
        if not (isinstance(run, str) and isinstance(step, str) and isinstance(stamp, str)):
            continue
        try:
            when = datetime.strptime(stamp, _LOG_TIME).timestamp()
        except ValueError:
            continue
        found[(run, step)] = when + _LOG_ROUNDING_S
    return found
