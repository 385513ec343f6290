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
    """

    key: str
    value: Value
    goals: list[Goal]
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    obstacles: list[str] = field(default_factory=list)


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
