"""The README's benchmark table, written from a results document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import readme, report
from bench.model import Figure, Goal


@pytest.fixture
def doc(tmp_path: Path) -> dict[str, Any]:
    parts = {"resize": 120.0, "blur": 180.0, "convert": 140.0, "triton": 1300.0, "stack": 2500.0}
    figures = [
        Figure(
            "peak_rss_mb",
            dict(parts),
            [Goal(f"peak_rss_mb.{p}", "<=", 150.0) for p in ("resize", "blur", "convert")]
            + [Goal("peak_rss_mb.stack", "<=", 2048.0)],
            "sampled",
        ),
        Figure(
            "chain_step_ms",
            {"kpipe": 5.5, "celery": 9.0, "ratio": 0.61},
            [Goal("chain_step_ms.kpipe", "<=", 6.0)],
            "side by side",
        ),
        Figure("triton_batching_gain", 0.74, [], "eight clients"),
    ]
    return report.results(figures, report.RunInfo(False, 100.0, 0.4))


def test_one_row_per_goal_a_range_for_a_goal_every_part_has(doc: dict[str, Any]) -> None:
    table = readme.section(doc)
    machine = readme.machine_label(doc["meta"])
    assert (
        f"| `peak_rss_mb.<each>` | 120 (resize) to 180 (blur) | <= 150 | 2 of 3 | {machine} |"
        in table
    )
    assert f"| `peak_rss_mb.stack` | 2500 | <= 2048 | **no** | {machine} |" in table
    assert f"| `chain_step_ms.kpipe` | 5.5 | <= 6 | yes | {machine} |" in table
    # Values with no goal still get their row.
    assert f"| `chain_step_ms.celery` | 9 | none | - | {machine} |" in table
    assert f"| `triton_batching_gain` | 0.74 | none | - | {machine} |" in table
    assert "| `peak_rss_mb.triton` | 1300 | none | - |" in table


def test_the_machine_says_where_and_how_busy(doc: dict[str, Any]) -> None:
    label = readme.machine_label(doc["meta"])
    assert label.startswith(f"{doc['meta']['machine']['cores']}-core ")
    assert "load 0.4" in label
    assert "quick" not in label
