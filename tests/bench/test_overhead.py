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
    parts = made_of(0.82, 2277.0, 38.0, 2315.0)
    assert parts["cycle_ms"] == pytest.approx(CONCURRENCY * 1000 / 0.82)
    total = parts["steps_ms"] + parts["routing_in_run_ms"] + parts["outside_the_run_ms"]
    assert total == pytest.approx(parts["cycle_ms"])


def test_the_table_shows_each_way_beside_in_process_and_the_ratio_is_their_cycles() -> None:
    result = figure(50, (1.0, 1.2), 2039.0, {"routed": (0.9, ROUTED), "fused": (1.0, FUSED)})
    (table,) = result.tables
    assert [row[0] for row in table.rows] == ["in_process", "routed", "fused"]
    assert table.rows[1][1] == f"{0.9 / 1.1:.3f}"
    assert isinstance(result.value, dict)
    assert float(table.rows[1][1]) == pytest.approx(result.value["throughput_routed"], abs=1e-3)
    (routed,) = [o for o in result.obstacles if o.startswith("routed: a photo's cycle")]
    assert "routing in the run +38 ms" in routed
