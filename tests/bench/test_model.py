"""The benchmark's goal and percentile arithmetic."""

from __future__ import annotations

import pytest

from bench.model import Goal, Value, lookup, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([3.0, 1.0, 2.0], 50, 2.0), ([1.0, 2.0], 50, 1.5), ([5.0], 99, 5.0), ([0.0, 10.0], 99, 9.9)],
)
def test_percentile_interpolates(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("goal", "value", "met"),
    [
        (Goal("x", ">=", 0.85), 0.9, True),
        (Goal("x", "<=", 2.0), 2.5, False),
        (Goal("x", "<=", 2.0), None, None),
    ],
)
def test_goal_met(goal: Goal, value: float | None, met: bool | None) -> None:
    assert goal.met(value) is met


def test_lookup_expands_a_star_over_a_dict() -> None:
    figures: dict[str, Value] = {
        "cold_start_s": {"resize": 0.5, "blur": None},
        "events_per_s": 600.0,
    }
    assert lookup(figures, "cold_start_s.*") == {
        "cold_start_s.resize": 0.5,
        "cold_start_s.blur": None,
    }
    assert lookup(figures, "events_per_s") == {"events_per_s": 600.0}
    assert lookup(figures, "missing.p50") == {"missing.p50": None}
