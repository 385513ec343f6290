"""Old-syntax conditions rewritten into CEL hold exactly when the old ones did."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.conditions import BadCondition, parse_condition
from router.migrations.legacy_conditions import Clause, parse_legacy, rewrite_condition

# -- the old semantics, as router/conditions.py had them before CEL (commit 7781e27) -----------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _lookup(metadata: Any, path: tuple[str, ...]) -> Any:
    value: Any = metadata
    for i, part in enumerate(path):
        if part == "labels" and isinstance(value, dict) and "labels" not in value:
            detections = value.get("detections")
            if isinstance(detections, list) and i == len(path) - 1:
                return [d.get("label") for d in detections if isinstance(d, dict)]
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "contains":
        try:
            return isinstance(left, list | str) and right in left
        except TypeError:  # a non-string in a string: the old router crashed; now false
            return False
    if op in ("==", "!="):
        return _OPS[op](left, right)
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return False


def _holds(clause: Clause, upstream: Mapping[str, Any]) -> bool:
    value = _lookup(upstream.get(clause.step, {}), clause.path)
    result = bool(value) if clause.op is None else _compare(clause.op, value, clause.literal)
    return not result if clause.negate else result


def old_evaluate(text: str, upstream: Mapping[str, Any]) -> bool:
    return any(all(_holds(c, upstream) for c in conj) for conj in parse_legacy(text))


# -- examples ----------------------------------------------------------------------------------

UPSTREAM: dict[str, dict[str, Any]] = {
    "faces": {"count": 2, "detections": [{"label": "face"}, {"label": "face"}]},
    "objects": {"count": 1, "detections": [{"label": "cat", "score": 0.9}]},
    "empty": {"count": 0, "detections": []},
    "meta": {"format": "png", "nested": {"ok": True}, "sub": {"detections": [{"label": "x"}, {}]}},
    "detect-faces": {"count": 3, "in": {"labels": ["a"]}},
}

# The old module's own test table: each must still give the same answer.
OLD_CASES = [
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
    ("meta.format > 3", False),
    ("meta.nothing == null", True),
    ("faces.count == 2.0", True),
    ("meta.nested.ok == true", True),
    ("not meta.missing > 0", True),
    ("meta.nested.ok == 1", True),
    ("faces.count > 1.5", True),
    ("meta.sub.labels contains 'x'", True),  # labels of a map's detections, at any depth
    ("meta.sub.labels contains null", True),  # a detection without a label
    ("meta.sub.labels == null", False),
    ("meta.nested.labels == null", True),
    ("meta.sub.labels", True),
    ("not meta.nested.labels", True),
    ("detect-faces.count == 3", True),
    ("detect-faces.in.labels contains 'a'", True),
    ("faces.labels contains 'face' and not faces.labels contains 'cat'", True),
]


@pytest.mark.parametrize(("text", "expected"), OLD_CASES)
def test_the_old_answers_stand(text: str, expected: bool) -> None:
    assert old_evaluate(text, UPSTREAM) is expected
    assert parse_condition(rewrite_condition(text)).evaluate(UPSTREAM) is expected


@pytest.mark.parametrize(
    ("old", "cel"),
    [
        (
            "meta.format == 'png'",
            'has(meta.format) && type(meta.format) == string && meta.format == "png"',
        ),
        ("meta.nothing == null", "!(has(meta.nothing)) || type(meta.nothing) == null_type"),
        ("a.b <= null", "false"),
        ("not a.b > null", "true"),
        (
            "detect-faces.count >= 2.5",
            'has(upstreamSteps["detect-faces"].count)'
            ' && ((type(upstreamSteps["detect-faces"].count) == int'
            ' && upstreamSteps["detect-faces"].count >= 3)'
            ' || (type(upstreamSteps["detect-faces"].count) == double'
            ' && upstreamSteps["detect-faces"].count >= 2.5))',
        ),
        (
            "a.in.b == 'x'",
            '"in" in a && type(a["in"]) == map && has(a["in"].b)'
            ' && type(a["in"].b) == string && a["in"].b == "x"',
        ),
    ],
)
def test_rewrites_read_as_expected(old: str, cel: str) -> None:
    assert rewrite_condition(old) == cel


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("faces", "<step>.<field>"),
        ("faces.count >", "needs a value"),
        ("faces.count > count", "expected a number"),
        ("faces.count > 0 xor b.c", "'and' or 'or'"),
        ("faces.count ~ 3", "unexpected"),
        ("faces.count > 01", "bad literal"),  # the old router answered 500: never stored
        ("faces.kind == 'a\\\"b'", "bad literal"),
        ('faces.kind == "\\x"', "bad literal"),
        (" or ".join(["faces.count > 0"] * 40), "longer than"),
    ],
)
def test_what_cannot_be_rewritten_says_why(text: str, message: str) -> None:
    with pytest.raises(BadCondition, match=message):
        rewrite_condition(text)


def test_a_long_stored_condition_still_fits() -> None:
    text = " and ".join(f"faces.count > {i}" for i in range(10))
    cond = parse_condition(rewrite_condition(text))
    assert cond.evaluate({"faces": {"count": 10}})
    assert not cond.evaluate({"faces": {"count": 9}})


# -- the property: same answer for any old condition and any metadata -------------------------

steps = st.sampled_from(["faces", "objects", "detect-faces", "int", "in", "true", "_x", "e", "d"])
fields = st.sampled_from(
    ["count", "labels", "detections", "label", "x", "in", "a-b", "null", "size", "e", "d"]
)
refs = st.builds(
    lambda step, path: ".".join([step, *path]), steps, st.lists(fields, min_size=1, max_size=3)
)
numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,18})?", fullmatch=True
) | st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "2",
        "2.0",
        "0.5",
        "9007199254740993",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1" + "0" * 400 + ".5",
    ]
)
strings = st.text(max_size=6).map(json.dumps) | st.sampled_from(
    ["'cat'", "'face'", "''", "'a\"b'", '"cat"', '""', "'x'"]
)
literals = numbers | strings | st.sampled_from(["true", "false", "null"])
ops = st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "contains"])
clauses = st.builds(
    lambda negate, ref, tail: ("not " if negate else "") + ref + tail,
    st.booleans(),
    refs,
    st.none().map(lambda _: "") | st.builds(lambda op, lit: f" {op} {lit}", ops, literals),
)
conditions = st.builds(
    lambda first, rest: first + "".join(f" {joiner} {c}" for joiner, c in rest),
    clauses,
    st.lists(st.tuples(st.sampled_from(["and", "or"]), clauses), max_size=2),
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([0, 1, 2, -1, 3, 2**53 + 1, 2**63 - 1, -(2**63)])
    | st.floats()
    | st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, 2.5, 9007199254740992.0, 1e20])
    | st.sampled_from(["cat", "face", "", "x", 'a"b', "c"])
    | st.text(max_size=3)
)
detections = st.lists(st.fixed_dictionaries({}, optional={"label": scalars}) | scalars, max_size=3)
values = st.recursive(
    scalars | detections,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(fields, inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(steps, st.dictionaries(fields, values, max_size=4) | values, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=conditions, upstream=metadata)
def test_the_rewrite_holds_exactly_when_the_old_condition_did(
    text: str, upstream: dict[str, Any]
) -> None:
    try:
        parse_legacy(text)
    except BadCondition:
        return  # not a condition the old router could have stored
    cel = rewrite_condition(text)
    condition = parse_condition(cel)
    # a clause that is constant (`x.y > null` is always false) names no step
    assert condition.steps <= {c.step for conj in parse_legacy(text) for c in conj}
    assert condition.evaluate(upstream) is old_evaluate(text, upstream), cel
