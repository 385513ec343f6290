"""What a figure measures and what it is held to: plain data for the report."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Value = float | None | dict[str, float | None]

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    """A target on one number of a figure, e.g. ``overhead_ratio.routed >= 0.85``.

    ``key`` is a dotted path in ``latest.json``; ``*`` as its last segment
    holds every entry of a figure's dict (one per part, say) to the goal.
    """

    key: str
    op: str
    target: float
    unit: str = ""

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the goal; None when nothing was measured."""
        return None if value is None else _OPS[self.op](value, self.target)

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.target:g}{(' ' + self.unit) if self.unit else ''}"


@dataclass(frozen=True)
class Table:
    """A small table for a figure's section of the report (a breakdown, say).

    Attributes:
        title: one line above the table.
        columns: the header cells.
        rows: the body, one tuple of cells per row, as many as ``columns``.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row!r} has {len(row)} cells, not {len(self.columns)}")

    def to_data(self) -> dict[str, Any]:
        """The table as JSON data: its title and one dict per row, by column."""
        return {
            "title": self.title,
            "rows": [dict(zip(self.columns, r, strict=True)) for r in self.rows],
        }

    def markdown(self) -> list[str]:
        """The table as Markdown lines (a title line, a blank line, then the table)."""
        lines = [self.title, "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "---|" * len(self.columns))
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in self.rows
        ]
        return lines


@dataclass
class Figure:
    """One figure's numbers, how they were measured, and what stands in the way of its goals.

    Attributes:
        key: its top-level key in ``latest.json`` (``overhead_ratio`` ...).
        value: the number, or a dict of numbers (``{"routed": 0.8, ...}``).
        goals: what the numbers are held to.
        method: one paragraph for the report: what exactly was timed.
        details: supporting measurements (throughputs, counts, breakdowns).
        obstacles: measured evidence of what stands in the way of an unmet goal.
        tables: breakdowns printed in the figure's section of the report.
    """

    key: str
    value: Value
    goals: list[Goal]
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    obstacles: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def lookup(figures: dict[str, Value], key: str) -> dict[str, float | None]:
    """Every value a goal key names: ``a.b`` -> ``{"a.b": v}``; ``a.*`` -> each ``a.x``."""
    head, _, tail = key.partition(".")
    value = figures.get(head)
    if not tail:
        return {key: value if not isinstance(value, dict) else None}
    if not isinstance(value, dict):
        return {key: None}
    if tail == "*":
        return {f"{head}.{k}": v for k, v in value.items()}
    return {key: value.get(tail)}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
