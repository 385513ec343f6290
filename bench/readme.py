"""The README's benchmark table, written from a ``latest.json``: ``python -m bench.readme``.

One row per goal, with the value measured and the machine it came from; a
goal held by every part (``peak_rss_mb.<part>`` ...) is one row with the
range and how many parts meet it; values with no goal follow.

Example:
    $ python -m bench.readme bench/results/latest.json
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

# A goal held by more keys than this, with one target, is one row (its range).
_GROUPED = 2


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def machine_label(meta: dict[str, Any]) -> str:
    """A short name for the machine and run: cores, CPU, date, load, quick or full."""
    m = meta["machine"]
    load = (meta.get("load_average") or {}).get("start")
    parts = [f"{m['cores']}-core {m['cpu']}", str(meta["date"])[:10]]
    if load is not None:
        parts.append(f"load {load:g}")
    if meta.get("quick"):
        parts.append("quick run")
    return ", ".join(parts)


def _goal_rows(goals: list[dict[str, Any]], machine: str) -> Iterable[tuple[str, ...]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for goal in goals:
        groups.setdefault((goal["key"].split(".")[0], goal["goal"]), []).append(goal)
    for (figure, target), members in groups.items():
        if len(members) <= _GROUPED:
            for g in members:
                met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
                yield (f"`{g['key']}`", _fmt(g["value"]), target, met, machine)
            continue
        measured = [g for g in members if g["value"] is not None]
        low = min(measured, key=lambda g: g["value"], default=None)
        high = max(measured, key=lambda g: g["value"], default=None)
        span = (
            "n/a"
            if low is None or high is None
            else f"{_fmt(low['value'])} ({low['key'].split('.', 1)[1]}) to "
            f"{_fmt(high['value'])} ({high['key'].split('.', 1)[1]})"
        )
        meeting = sum(g["met"] is True for g in members)
        yield (f"`{figure}.<each>`", span, target, f"{meeting} of {len(members)}", machine)


def _other_rows(doc: dict[str, Any], machine: str) -> Iterable[tuple[str, ...]]:
    keyed = {g["key"] for g in doc["goals"]}
    for figure in doc["methods"]:
        value = doc.get(figure)
        if not isinstance(value, dict):
            if figure not in keyed:
                yield (f"`{figure}`", _fmt(value), "none", "-", machine)
            continue
        rest = {k: v for k, v in value.items() if f"{figure}.{k}" not in keyed}
        if len(rest) > _GROUPED + 1:
            listed = ", ".join(f"{k} {_fmt(v)}" for k, v in rest.items())
            yield (f"`{figure}` (no goal)", listed, "none", "-", machine)
        else:
            for k, v in rest.items():
                yield (f"`{figure}.{k}`", _fmt(v), "none", "-", machine)


def section(doc: dict[str, Any]) -> str:
    """The Markdown table of a ``latest.json`` document, with a line about its run."""
    meta = doc["meta"]
    machine = machine_label(meta)
    rows = [*_goal_rows(doc["goals"], machine), *_other_rows(doc, machine)]
    lines = [
        f"From `make bench`{' --quick' if meta.get('quick') else ''} on {machine} "
        f"({meta['machine']['memory_gb']} GB, Python {meta['machine']['python']}); "
        f"every comparison side by side in that one run.",
        "",
        "| figure | measured | goal | met | machine |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument(
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("bench/results/latest.json"),
)
def main(path: Path) -> None:
    """Print the README's benchmark table from PATH (a latest.json)."""
    click.echo(section(json.loads(path.read_text())), nl=False)


if __name__ == "__main__":
    main()
