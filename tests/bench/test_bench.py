"""Smoke test of the benchmark: the quick mode of two cheap figures writes the report.

The numbers are not held to their goals here: this is a benchmark, not a timed test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.__main__ import main
from kpipe.local.config import PARTS

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def test_quick_hops_and_memory_write_the_report(tmp_path: Path) -> None:
    only = ["--only", "hop_latency_ms", "--only", "peak_rss_mb"]
    result = CliRunner().invoke(main, ["--quick", "--out", str(tmp_path), *only])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert set(doc["hop_latency_ms"]) == {"p50", "p99"}
    assert all(isinstance(v, float) and v > 0 for v in doc["hop_latency_ms"].values())
    # Every part has a figure, and every part took requests while memory was sampled.
    assert {"router", "s3", "stack", *PARTS} <= set(doc["peak_rss_mb"])
    assert all(isinstance(v, float) for v in doc["peak_rss_mb"].values())
    workout = doc["details"]["peak_rss_mb"]["workout"]
    assert all(workout["requests"][p] for p in PARTS), workout
    assert doc["meta"]["quick"] is True
    assert {"cpu", "cores", "memory_gb", "python", "os"} <= set(doc["meta"]["machine"])
    assert {g["key"] for g in doc["goals"]} >= {"hop_latency_ms.p50", "peak_rss_mb.stack"}
    # The hop breakdown: by the clock and by CPU, the router's process among the rows.
    tables = doc["tables"]["hop_latency_ms"]
    assert len(tables) == 2
    assert "router" in {row["process"] for row in tables[1]["rows"]}
    markdown = (tmp_path / "latest.md").read_text()
    assert "`hop_latency_ms.p99`" in markdown
    assert "| request leg: " in markdown
    assert doc["meta"]["machine"]["cpu"] in markdown
