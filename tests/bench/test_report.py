"""The report: goal rows, breakdown tables and the machine's load, from plain figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.model import Figure, Goal, Table


def _hop_figure() -> Figure:
    table = Table(
        "Where a hop goes:",
        ("part of a hop", "ms"),
        (("request leg", "1.50"), ("reply | leg", "2.00")),
    )
    return Figure(
        key="hop_latency_ms",
        value={"p50": 3.5, "p99": 9.0},
        goals=[Goal("hop_latency_ms.p50", "<=", 2.0), Goal("hop_latency_ms.p99", "<=", 6.0)],
        method="ten hops",
        obstacles=["the router is slow"],
        tables=[table],
    )


def _chain_figure() -> Figure:
    return Figure(
        key="chain_steps_per_s",
        value={"kpipe": 320.0, "celery": None, "ratio": None},
        goals=[Goal("chain_steps_per_s.kpipe", ">=", 300.0)],
        method="four clients",
        obstacles=["Celery peer not measured: no Redis"],
    )


def test_markdown_has_goal_rows_tables_and_unmet_obstacles(tmp_path: Path) -> None:
    run = report.RunInfo(True, 12.0, 1.25)
    path = report.write(tmp_path, [_hop_figure(), _chain_figure()], run)
    markdown = (tmp_path / "latest.md").read_text()
    assert "| `hop_latency_ms.p50` | 3.5 | <= 2 | **no** |" in markdown
    assert "| `chain_steps_per_s.kpipe` | 320 | >= 300 | yes |" in markdown
    # Values with no goal are listed too, unmeasured ones as n/a.
    assert "| `chain_steps_per_s.celery` | n/a | none | - |" in markdown
    assert "| request leg | 1.50 |" in markdown
    assert "| reply \\| leg | 2.00 |" in markdown  # a cell's pipe is escaped
    assert "- the router is slow" in markdown
    # A met goal's notes stay out of the report.
    assert "no Redis" not in markdown
    assert "1.25 at the start" in markdown
    doc = json.loads(path.read_text())
    assert doc["tables"]["hop_latency_ms"][0]["rows"][0] == {
        "part of a hop": "request leg",
        "ms": "1.50",
    }
    assert doc["meta"]["load_average"]["start"] == 1.25
    assert {g["key"]: g["met"] for g in doc["goals"]} == {
        "hop_latency_ms.p50": False,
        "hop_latency_ms.p99": False,
        "chain_steps_per_s.kpipe": True,
    }


def test_notes_about_the_run_come_first(tmp_path: Path) -> None:
    note = "hop_latency_ms started beside earlier work the stack had not finished after 120 s"
    report.write(tmp_path, [_hop_figure()], report.RunInfo(False, notes=[note]))
    markdown = (tmp_path / "latest.md").read_text()
    assert markdown.index(f"**Note:** {note}") < markdown.index("| figure | value |")


def test_a_table_row_must_fill_every_column() -> None:
    with pytest.raises(ValueError, match="2 cells, not 3"):
        Table("t", ("a", "b", "c"), (("1", "2"),))
