"""What a cold start must show: a request that does each part's real work, and its check.

A cold start counts only when the part's first answer is a ``step.completed``
that did the work its request asks: an AI part's answer holds what Triton
found (a face in the astronaut, lines of text on a page, strings read from
those lines), a part that obscures or draws says it changed a region. Any
other answer (a 503 while Triton lacks the model, a ``step.failed``, a
completion that found nothing) is reported as the reason the part could not
be timed (:func:`verdict`).

:func:`import_timeline` splits what ``-X importtime`` printed by when:
before the port listened, or while the first request was answered.

Example:
    >>> verdict(200, "io.kpipe.step.completed", {"metadata": {"count": 1}}, PROBES["detect_faces"])
    >>> verdict(503, None, None, PROBES["detect_faces"])
    'answered 503 without an event'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventing.contract import EventType

JSON = dict[str, Any]
# Why an answer's metadata does not show the work, or None when it does.
Check = Callable[[Mapping[str, Any]], str | None]


def _at_least(key: str, what: str) -> Check:
    def check(metadata: Mapping[str, Any]) -> str | None:
        value = metadata.get(key)
        if isinstance(value, (int, float)) and value >= 1:
            return None
        return f"it {what} nothing ({key}={value!r})"

    return check


def _strings(metadata: Mapping[str, Any]) -> str | None:
    strings = metadata.get("strings")
    return None if isinstance(strings, list) and strings else "it read no string"


def _resized(metadata: Mapping[str, Any]) -> str | None:
    return None if metadata.get("resized") is True else "it did not resize the photo"


def _converted(metadata: Mapping[str, Any]) -> str | None:
    return None if metadata.get("format") == "png" else "it did not convert the photo"


def _completed(metadata: Mapping[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class Probe:
    """A part's cold-start request and the check of its answer.

    Attributes:
        photo: ``face`` (the astronaut, 512 x 512) or ``page`` (scikit-image's
            scanned page, text in lines).
        params: the step's params.
        upstream: which detections an upstream step hands it: ``faces`` (the
            astronaut's hand-placed face box), ``text`` (what detect_text found
            on the page, on the stack's Triton) or none.
        check: what the answer's metadata must show.
    """

    photo: str
    check: Check
    params: JSON = field(default_factory=dict)
    upstream: str | None = None


PROBES: dict[str, Probe] = {
    "resize": Probe("face", _resized, {"max_side": 256}),
    "convert": Probe("face", _converted, {"format": "png"}),
    "detect_faces": Probe("face", _at_least("count", "found")),
    "detect_text": Probe("page", _at_least("count", "found")),
    "read_text": Probe("page", _strings, upstream="text"),
    # No YOLO ships: with one, any completion ran it (the part has no path without Triton).
    "detect_objects": Probe("face", _completed),
    "blur": Probe("face", _at_least("blurred", "blurred"), {"labels": ["face"]}, "faces"),
    "blur_faces": Probe("face", _at_least("blurred", "blurred")),
    "annotate": Probe("face", _at_least("annotated", "annotated"), upstream="faces"),
}


def verdict(status: int, event_type: str | None, data: JSON | None, probe: Probe) -> str | None:
    """Why an answer does not count as a cold start, or None when it does.

    Args:
        status: the HTTP status.
        event_type: the answer's ``ce-type`` (None without an event).
        data: the answer's event data (a ``step.completed``'s has ``metadata``).
        probe: the part's probe.
    """
    if event_type is None:
        return f"answered {status} without an event"
    if event_type != EventType.STEP_COMPLETED.value or status != 200 or data is None:
        code = (data or {}).get("code")
        return f"answered {status} {event_type}" + (f" ({code})" if code else "")
    reason = probe.check(data.get("metadata") or {})
    return None if reason is None else f"completed, but {reason}"


@dataclass(frozen=True)
class ImportLine:
    """One top-level import ``-X importtime`` reported, and when the bench read it."""

    module: str
    cumulative_s: float
    at_s: float  # seconds since the process was started


def parse_importtime(line: str) -> tuple[int, str, float] | None:
    """``(depth, module, cumulative s)`` of one ``import time:`` line; None for other lines."""
    if not line.startswith("import time:"):
        return None
    fields = line.removeprefix("import time:").split("|")
    if len(fields) != 3 or not fields[1].strip().isdigit():
        return None
    name = fields[2].rstrip("\n")
    stripped = name.lstrip(" ")
    depth = (len(name) - len(stripped) - 1) // 2
    return depth, stripped, int(fields[1]) / 1e6


def import_timeline(
    lines: Sequence[tuple[float, str]], listening_s: float, answered_s: float
) -> dict[str, Any]:
    """The top-level imports of a process, split at the moment its port listened.

    Args:
        lines: ``(seconds since start, stderr line)`` as they were read.
        listening_s: when the port accepted a connection.
        answered_s: when the first answer arrived.

    Returns:
        ``before_listening_s`` and ``during_first_answer_s`` (sums of the
        top-level imports' cumulative times), and the slowest top-level
        imports of each phase, ``(module, s)`` largest first.
    """
    tops = []
    for at, line in lines:
        parsed = parse_importtime(line)
        if parsed is not None and parsed[0] == 0:
            tops.append(ImportLine(parsed[1], parsed[2], at))
    before = [t for t in tops if t.at_s <= listening_s]
    during = [t for t in tops if listening_s < t.at_s <= answered_s]

    def slowest(found: list[ImportLine]) -> list[tuple[str, float]]:
        ranked = sorted(found, key=lambda t: -t.cumulative_s)[:6]
        return [(t.module, round(t.cumulative_s, 4)) for t in ranked]

    return {
        "before_listening_s": round(sum(t.cumulative_s for t in before), 4),
        "during_first_answer_s": round(sum(t.cumulative_s for t in during), 4),
        "slowest_before": slowest(before),
        "slowest_during": slowest(during),
    }
