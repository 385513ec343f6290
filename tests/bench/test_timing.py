"""The benchmark's arithmetic on timestamps: per-step times, rates, a hop's legs, log times."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bench.timing import Hop, done_times, hops, per_step_ms, steps_per_s


@pytest.mark.parametrize(
    ("started", "ended", "steps", "expected"),
    [(100.0, 100.25, 10, 25.0), (5.0, 5.0, 1, 0.0), (0.0, 1.0, 4, 250.0)],
)
def test_per_step_ms_spreads_a_chain_over_its_steps(
    started: float, ended: float, steps: int, expected: float
) -> None:
    assert per_step_ms(started, ended, steps) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("started", "ended", "steps", "why"),
    [(1.0, 2.0, 0, "at least one step"), (2.0, 1.0, 10, "before it started")],
)
def test_per_step_ms_refuses_impossible_chains(
    started: float, ended: float, steps: int, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        per_step_ms(started, ended, steps)


def test_steps_per_s_runs_from_the_first_start_to_the_last_end() -> None:
    # Two overlapping chains of 10 steps over 1.5 s in all: 20 steps / 1.5 s.
    chains = [(10.0, 11.0), (10.5, 11.5)]
    assert steps_per_s(chains, 10) == pytest.approx(20 / 1.5)


@pytest.mark.parametrize("chains", [[], [(3.0, 3.0)]])
def test_steps_per_s_needs_chains_that_took_time(chains: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError, match="chains"):
        steps_per_s(chains, 10)


def test_hops_split_at_the_parts_log_line_and_leave_out_its_work() -> None:
    # Requested at 0, part busy 2 ms from 3 ms to 5 ms, next request at 9 ms.
    found = hops([0.0, 0.009, 0.020], [2.0, 4.0], [0.005, None])
    legs = [(h.total, h.request, h.reply) for h in found]
    assert legs == [pytest.approx((7.0, 3.0, 4.0)), (pytest.approx(7.0), None, None)]
    assert all(isinstance(h, Hop) for h in found)


@pytest.mark.parametrize("index", [0, 1])
def test_hops_legs_add_up_to_the_hop(index: int) -> None:
    hop = hops([1.0, 1.0123, 1.0301], [1.1, 2.2], [1.004, 1.021])[index]
    assert hop.request is not None
    assert hop.reply is not None
    assert hop.request + hop.reply == pytest.approx(hop.total)


def test_hops_need_one_mark_more_than_steps() -> None:
    with pytest.raises(ValueError, match="one mark more"):
        hops([0.0, 1.0], [1.0, 1.0], [None, None])


def _line(message: str, run: str | None = "r1", step: str | None = "s0") -> str:
    return json.dumps(
        {
            "time": "2026-12-02 13:47:03,683",
            "level": "INFO",
            "component": "resize",
            "run": run,
            "step": step,
            "logger": "functions.step",
            "message": message,
        }
    )


def test_done_times_reads_the_parts_step_done_lines() -> None:
    lines = [
        _line("resize: step done in 15 ms -> processed/x.png"),
        _line("resize: step done in 5 ms -> processed/y.png", step="s1"),
        _line("resize: step failed: bad image", step="s2"),
        _line("resize: step done in 5 ms -> processed/z.png", run=None),
        "Traceback (most recent call last):",
        "[1, 2]",
    ]
    found = done_times(lines)
    # Local time cut to the ms: half a ms is added back.
    expected = datetime(2026, 12, 2, 13, 47, 3, 683000).timestamp() + 0.0005
    assert found == {("r1", "s0"): pytest.approx(expected), ("r1", "s1"): pytest.approx(expected)}
