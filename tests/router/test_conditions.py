from __future__ import annotations

from typing import Any

import pytest

from router.conditions import BadCondition, parse_condition

UPSTREAM: dict[str, dict[str, Any]] = {
    "faces": {"count": 2, "detections": [{"label": "face"}, {"label": "face"}]},
    "objects": {"count": 1, "detections": [{"label": "cat", "score": 0.9}]},
    "empty": {"count": 0, "detections": []},
    "meta": {"format": "png", "nested": {"ok": True}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("faces.count > 0", True),
        ("faces.count >= 3", False),
        ("empty.count == 0", True),
        ("empty.count != 0", False),
        ("faces.count < 2", False),
        ("faces.count <= 2", True),
        ("objects.labels contains 'cat'", True),
        ('objects.labels contains "dog"', False),
        ("not objects.labels contains 'dog'", True),
        ("meta.format == 'png'", True),
        ("meta.nested.ok", True),
        ("meta.nested.missing", False),
        ("faces.count", True),
        ("empty.count", False),
        ("empty.count > 0 or faces.count > 0", True),
        ("empty.count > 0 and faces.count > 0", False),
        ("faces.count > 0 and objects.count > 0 or empty.count > 0", True),
        ("missing.count > 0", False),
        ("meta.format > 3", False),  # an ordering across types is false, not an error
        ("meta.nothing == null", True),
        ("faces.count == 2.0", True),
        ("meta.nested.ok == true", True),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    assert parse_condition(text).evaluate(UPSTREAM) is expected


def test_steps_lists_every_referenced_step() -> None:
    cond = parse_condition("faces.count > 0 or not objects.labels contains 'cat'")
    assert cond.steps == frozenset({"faces", "objects"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("faces", "<step>.<field>"),
        ("faces.count >", "needs a value"),
        ("faces.count > count", "expected a number"),
        ("faces.count > 0 xor b.c", "'and' or 'or'"),
        ("faces.count ~ 3", "unexpected"),
        ("faces.count > 0 and", "<step>.<field>"),
    ],
)
def test_bad_conditions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(BadCondition, match=message):
        parse_condition(text)
