"""overhead_ratio reports routing's share of a run, beside the throughput ratio and its parts."""

from __future__ import annotations

import pytest

from bench.figures.overhead import CONCURRENCY, figure, made_of

# The run: 2315 ms, of which 2277 ms inside the parts and 37 ms routing.
ROUTED = {
    "run_ms_mean": 2315.0,
    "step_ms_mean": 2277.0,
    "outside_steps_ms_mean": 38.0,
    "routing_share": 38.0 / 2315.0,
    "upload_to_run_ms_mean": 20.0,
    "cpu_ms_per_photo.triton": 1712.0,
}
FUSED = {**ROUTED, "step_ms_mean": 2302.0, "outside_steps_ms_mean": 13.0, "routing_share": 0.0056}


def test_routing_overhead_is_routings_share_of_a_run_not_the_throughput_loss() -> None:
    result = figure(50, (1.0, 1.0), 2039.0, {"routed": (0.82, ROUTED), "fused": (0.99, FUSED)})
    assert isinstance(result.value, dict)
    assert result.value["routing_share_routed"] == pytest.approx(0.0164, abs=1e-4)
    assert result.value["throughput_routed"] == pytest.approx(0.82)
    goals = {g.key: g for g in result.goals}
    assert goals["overhead_ratio.routing_share_routed"].met(result.value["routing_share_routed"])
    assert not goals["overhead_ratio.throughput_routed"].met(result.value["throughput_routed"])
    # The old name, which read a throughput ratio as routing overhead, is gone.
    assert "routed" not in result.value


def test_the_throughput_ratio_is_split_into_parts_that_add_up() -> None:
    parts = made_of(1.0, 0.82, ROUTED, 2039.0)
    assert parts["per_photo_ms"] == pytest.approx(CONCURRENCY * 1000 / 0.82)
    assert parts["in_process_ms"] == pytest.approx(CONCURRENCY * 1000)
    assert parts["steps_slower_than_in_process_ms"] == pytest.approx(238.0)
    assert parts["routing_in_run_ms"] == pytest.approx(38.0)
    rest = parts["per_photo_ms"] - parts["in_process_ms"]
    rest -= parts["steps_slower_than_in_process_ms"] + parts["routing_in_run_ms"]
    assert parts["before_and_after_the_run_ms"] == pytest.approx(rest)


def test_the_table_shows_each_way() -> None:
    result = figure(50, (1.0, 1.2), 2039.0, {"routed": (0.9, ROUTED), "fused": (1.0, FUSED)})
    (table,) = result.tables
    assert [row[0] for row in table.rows] == ["routed", "fused"]
    assert table.rows[0][1] == f"{0.9 / 1.1:.3f}"
