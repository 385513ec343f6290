"""ISO-8601 durations as Knative writes them in delivery specs (``PT0.2S``, ``PT30S``)."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration such as ``PT0.2S``, ``PT1M30S`` or ``P1D``.

    Years and months are refused: their length depends on a calendar date.

    Raises:
        ValueError: ``text`` is not a duration of that form.
    """
    match = _DURATION.match(text.strip().upper())
    if match is None:
        raise ValueError(f"{text!r} is not an ISO-8601 duration like PT0.2S")
    return sum(
        float(value) * _UNIT_SECONDS[unit]
        for unit, value in match.groupdict().items()
        if value is not None
    )


def format_duration(seconds: float) -> str:
    """The ISO-8601 duration for ``seconds``, e.g. ``PT0.2S``."""
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"
