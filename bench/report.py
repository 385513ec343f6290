"""Writes the results: ``latest.json`` (the figures by key) and ``latest.md`` beside it."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
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


def load_average() -> float:
    """The machine's load average over the last minute (runnable processes, all users)."""
    return round(os.getloadavg()[0], 2)


@dataclass
class RunInfo:
    """How the run went, for the report's header.

    Attributes:
        quick: a smoke run.
        elapsed_s: the whole run, stack start and stop included.
        load_at_start: the machine's 1-minute load average when it began.
        notes: said at the top of the report (a figure that failed, or ran beside
            work the stack had not finished).
        durations_s: how long each measurement took.
    """

    quick: bool
    elapsed_s: float = 0.0
    load_at_start: float | None = None
    notes: list[str] = field(default_factory=list)
    durations_s: dict[str, float] = field(default_factory=dict)


def results(figures: list[Figure], run: RunInfo) -> dict[str, Any]:
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
            "quick": run.quick,
            "elapsed_s": round(run.elapsed_s, 1),
            "machine": machine(),
            "load_average": {"start": run.load_at_start, "end": load_average()},
            "notes": list(run.notes),
            "durations_s": {k: round(v, 1) for k, v in run.durations_s.items()},
        },
        "methods": {f.key: f.method for f in figures},
        "details": {f.key: f.details for f in figures},
        "obstacles": {f.key: f.obstacles for f in figures},
        "tables": {f.key: [t.to_data() for t in f.tables] for f in figures if f.tables},
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
        "in this one run and is reported as a ratio. " + _load_line(doc["meta"]),
        *_durations_line(doc["meta"]),
        *[line for note in doc["meta"].get("notes", []) for line in ("", f"**Note:** {note}")],
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
        for table in figure.tables:
            lines += ["", *table.markdown()]
        if figure.obstacles and (unmet or not figure.goals):
            title = "What stands in the way (measured)" if unmet else "Notes (measured)"
            lines += ["", f"{title}:", ""] + [f"- {o}" for o in figure.obstacles]
    return "\n".join(lines) + "\n"


def _durations_line(meta: dict[str, Any]) -> list[str]:
    durations = meta.get("durations_s") or {}
    if not durations:
        return []
    return ["", "Time taken: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()) + "."]


def _load_line(meta: dict[str, Any]) -> str:
    """What the load average was, so a reader can tell a busy machine's figures."""
    load = meta.get("load_average") or {}
    start, end = load.get("start"), load.get("end")
    cores = meta["machine"]["cores"]
    if start is None and end is None:
        return ""
    shown = " and ".join(
        f"{v:.2f} at the {k}" for k, v in (("start", start), ("end", end)) if v is not None
    )
    return f"Load average (1 min, every user of the machine): {shown}, on {cores} cores."


def write(out: Path, figures: list[Figure], run: RunInfo) -> Path:
    """Write ``latest.json`` and ``latest.md`` into ``out``; the JSON's path."""
    out.mkdir(parents=True, exist_ok=True)
    doc = results(figures, run)
    path = out / "latest.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "latest.md").write_text(markdown(doc, figures))
    return path
