"""The in-process figures: request sizes along a pipeline, and the router's CPU per hop."""

from __future__ import annotations

from dataclasses import dataclass

from bench.figures import requests


@dataclass
class _Quick:
    quick: bool = True


def test_request_sizes_are_flat_and_the_router_is_profiled() -> None:
    sizes, cpu = requests.measure(_Quick())  # type: ignore[arg-type]
    assert isinstance(sizes.value, dict)
    growth, reader, first = sizes.value["growth"], sizes.value["reader"], sizes.value["first"]
    assert growth is not None
    assert growth <= requests.GROWTH_GOAL
    # annotate reads every detector's 40 boxes: its request is the one that is large
    assert reader is not None
    assert first is not None
    assert reader > 10 * first
    steps = [step for step, _function, _size in sizes.details["by_step"]]
    assert steps[0] == "s0"
    assert steps[-1] == "boxes"
    assert len(steps) == 12
    assert isinstance(cpu.value, float)
    assert cpu.value > 0
    [profile] = cpu.tables
    assert any("route_event" in row[0] for row in profile.rows)
