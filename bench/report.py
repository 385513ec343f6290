"""Writes the results: ``latest.json`` (the figures by key) and ``latest.md`` beside it."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.model import Figure, lookup


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python and OS of this machine."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": sys.version.split()[0],
        "os": platform.platform(),
    }


def results(figures: list[Figure], quick: bool, elapsed_s: float) -> dict[str, Any]:
    """The JSON document: each figure's value at its key, plus goals, methods and details."""
    values = {f.key: f.value for f in figures}
    goals = []
    for figure in figures:
        for goal in figure.goals:
            for key, value in lookup(values, goal.key).items():
                goals.append(
                    {
                        "key": key,
                        "goal": f"{goal.op} {goal.target:g}",
                        "value": value,
                        "met": goal.met(value),
                    }
                )
    return {
        **values,
        "goals": goals,
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
            "elapsed_s": round(elapsed_s, 1),
            "machine": machine(),
        },
        "methods": {f.key: f.method for f in figures},
        "details": {f.key: f.details for f in figures},
        "obstacles": {f.key: f.obstacles for f in figures},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def markdown(doc: dict[str, Any], figures: list[Figure]) -> str:
    """The human report: machine, a goal table, then each figure's method and obstacles."""
    m = doc["meta"]["machine"]
    lines = [
        "# kpipe benchmark" + (" (quick run)" if doc["meta"]["quick"] else ""),
        "",
        f"Run {doc['meta']['date']} in {doc['meta']['elapsed_s']} s on: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, {m['os']}.",
        "",
        "These machines are shared and noisy: every comparison was measured side by side "
        "in this one run and is reported as a ratio.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    keyed = {g["key"] for g in doc["goals"]}
    for g in doc["goals"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
        lines.append(f"| `{g['key']}` | {_fmt(g['value'])} | {g['goal']} | {met} |")
    for figure in figures:
        flat = lookup(
            {figure.key: figure.value},
            f"{figure.key}.*" if isinstance(figure.value, dict) else figure.key,
        )
        for key, value in flat.items():
            if key not in keyed:
                lines.append(f"| `{key}` | {_fmt(value)} | none | - |")
    for figure in figures:
        unmet = [
            g for g in doc["goals"] if g["key"].split(".")[0] == figure.key and g["met"] is False
        ]
        lines += ["", f"## `{figure.key}`", "", figure.method]
        if figure.obstacles and (unmet or not figure.goals):
            title = "What stands in the way (measured)" if unmet else "Notes (measured)"
            lines += ["", f"{title}:", ""] + [f"- {o}" for o in figure.obstacles]
    return "\n".join(lines) + "\n"


def write(out: Path, figures: list[Figure], quick: bool, elapsed_s: float) -> Path:
    """Write ``latest.json`` and ``latest.md`` into ``out``; the JSON's path."""
    out.mkdir(parents=True, exist_ok=True)
    doc = results(figures, quick, elapsed_s)
    path = out / "latest.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "latest.md").write_text(markdown(doc, figures))
    return path
