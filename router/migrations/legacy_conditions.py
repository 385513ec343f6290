"""The ``when:`` language before CEL, kept only to rewrite stored conditions into CEL.

Nothing routes with it: the data migration that moves stored pipeline specs
to CEL (revision 0002, which Alembic loads whenever it checks the schema)
calls :func:`rewrite_condition` on every ``when``.

The old grammar (``or`` binds looser than ``and``)::

    expr    := conj ("or" conj)*
    conj    := clause ("and" clause)*
    clause  := ["not"] ref [op literal]
    ref     := step "." field ("." field)*
    op      := == | != | > | >= | < | <= | contains
    literal := number | "string" | 'string' | true | false | null

and what it meant, which the rewrite keeps for any metadata (but an integer beyond
64 bits, which CEL sees as a double):

- A ref walks maps; a missing key, a value that is not a map on the way, or a
  JSON null is ``null``. ``<map>.labels``, when the map has no ``labels`` but a
  ``detections`` list, is the ``label`` of each map in it (null if it has none).
- A clause without an operator is Python truthiness: false for null, false, 0,
  0.0, "" and empty lists and maps.
- ``==`` and ``!=`` are Python's: numbers compare across int and float, and a
  boolean is the number 0 or 1; ``== null`` holds for a missing field.
- ``<``, ``<=``, ``>``, ``>=`` compare numbers (booleans as 0 or 1) with numbers
  and strings with strings; any other pair, or null, is false.
- ``contains`` is a substring test on a string (a string literal only: the old
  router crashed on another) or membership by ``==`` in a list; else false.
- ``not`` negates its clause, which never fails, so ``not`` of a missing field
  is true.

CEL has no such implicit conversions and fails on a missing field (which the
router counts as false, even under ``!``), so each clause becomes an explicit,
never-failing CEL expression: presence tests with ``has()`` and a branch per
type. A step id that is not a CEL identifier is written ``upstreamSteps["id"]``.

Example:
    >>> print(rewrite_condition("faces.count > 0"))
    has(faces.count) && ((type(faces.count) == int && faces.count > 0) || \
(type(faces.count) == double && faces.count > 0.0) || (type(faces.count) == bool && faces.count))
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.conditions import (
    BadCondition,
    cel_string,
    compile_condition,
    is_field_name,
    step_reference,
)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|>=|<=|>|<)
      | (?P<word>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)
    )""",
    re.VERBOSE,
)
_LITERAL_WORDS = {"true": True, "false": False, "null": None}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Clause:
    """One old clause: ``[not] step.path [op literal]``."""

    negate: bool
    step: str
    path: tuple[str, ...]
    op: str | None
    literal: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise BadCondition(f"unexpected {text[pos:].strip()[:20]!r} at position {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _literal(kind: str, text: str) -> Any:
    try:
        if kind in ("num", "str"):
            if kind == "str" and text.startswith("'"):
                text = '"' + text[1:-1].replace('"', '\\"').replace("\\'", "'") + '"'
            return json.loads(text)
    except ValueError:
        # The old router answered 500 here, so no stored spec holds one.
        raise BadCondition(f"bad literal {text[:20]!r}") from None
    if kind == "word" and text in _LITERAL_WORDS:
        return _LITERAL_WORDS[text]
    raise BadCondition(f"expected a number, a quoted string, true, false or null, got {text!r}")


def parse_legacy(text: str) -> tuple[tuple[Clause, ...], ...]:
    """An old condition as a disjunction of conjunctions of clauses (the old parser)."""
    tokens = _tokens(text)
    if not tokens:
        raise BadCondition("empty condition")
    alternatives: list[tuple[Clause, ...]] = []
    clauses: list[Clause] = []
    i = 0
    while True:
        negate = i < len(tokens) and tokens[i] == ("word", "not")
        i += negate
        if i >= len(tokens) or tokens[i][0] != "word" or "." not in tokens[i][1]:
            found = tokens[i][1] if i < len(tokens) else "the end"
            raise BadCondition(f"expected <step>.<field>, got {found!r}")
        step, *path = tokens[i][1].split(".")
        i += 1
        op: str | None = None
        literal: Any = None
        if i < len(tokens) and (tokens[i][0] == "op" or tokens[i] == ("word", "contains")):
            op = tokens[i][1]
            if i + 1 >= len(tokens):
                raise BadCondition(f"{op!r} needs a value after it")
            literal = _literal(*tokens[i + 1])
            i += 2
        clauses.append(Clause(bool(negate), step, tuple(path), op, literal))
        if i == len(tokens):
            break
        joiner = tokens[i]
        if joiner not in (("word", "and"), ("word", "or")):
            raise BadCondition(f"expected 'and' or 'or', got {joiner[1]!r}")
        if joiner[1] == "or":
            alternatives.append(tuple(clauses))
            clauses = []
        i += 1
    alternatives.append(tuple(clauses))
    return tuple(alternatives)


# -- CEL building blocks: every expression below is total (a bool, never an error) ----------


def _any(*branches: str) -> str:
    """The disjunction of ``branches`` (conjunctions parenthesised); ``false`` if none."""
    if not branches:
        return "false"
    if len(branches) == 1:
        return branches[0]
    return " || ".join(
        f"({b})" if " && " in b or " || " in b or " ? " in b else b for b in branches
    )


def _all(*parts: str) -> str:
    """The conjunction of ``parts`` (``true`` if none); a disjunction is parenthesised."""
    if "false" in parts:
        return "false"
    parts = tuple(p for p in parts if p != "true")
    if not parts:
        return "true"
    return " && ".join(f"({p})" if " || " in p or " ? " in p else p for p in parts)


def _is(value: str, kind: str) -> str:
    return f"type({value}) == {kind}"


def _select(parent: str, name: str) -> str:
    if is_field_name(name):
        return f"{parent}.{name}"
    return f"{parent}[{cel_string(name)}]"


def _has(parent: str, name: str) -> str:
    if is_field_name(name):
        return f"has({parent}.{name})"
    return f"{cel_string(name)} in {parent}"


def _double(number: float) -> str:
    if math.isinf(number):
        return f'double("{"-" if number < 0 else ""}inf")'
    return repr(float(number))


def _ref(step: str, path: tuple[str, ...]) -> tuple[list[str], str]:
    """The conditions under which the field is there (perhaps null), and its value."""
    value = step_reference(step)
    present: list[str] = []
    for i, name in enumerate(path):
        if i:
            present.append(_is(value, "map"))
        present.append(_has(value, name))
        value = _select(value, name)
    return present, value


def _number(literal: Any) -> float | int | None:
    """The number a literal stands for in a comparison (a boolean is 0 or 1)."""
    if isinstance(literal, bool):
        return int(literal)
    return literal if isinstance(literal, int | float) else None


def _equals(value: str, literal: Any) -> str:
    """``value == literal`` as Python decides it, for a value that is there."""
    if literal is None:
        return _is(value, "null_type")
    if isinstance(literal, str):
        return _all(_is(value, "string"), f"{value} == {cel_string(literal)}")
    number = _number(literal)
    if number is None:
        return "false"
    branches = []
    if float(number).is_integer() and _INT64[0] <= number <= _INT64[1]:
        branches.append(_all(_is(value, "int"), f"{value} == {int(number)}"))
    if _exact_double(number) is not None:
        branches.append(_all(_is(value, "double"), f"{value} == {_double(number)}"))
    if number in (0, 1):
        branches.append(_all(_is(value, "bool"), value if number else f"!{value}"))
    return _any(*branches)


def _exact_double(number: float | int) -> float | None:
    try:
        as_double = float(number)
    except OverflowError:
        return None
    return as_double if as_double == number else None


def _int_order(value: str, op: str, number: float | int) -> str:
    """``value op number`` for a 64-bit int ``value``, exactly."""
    if isinstance(number, float) and not number.is_integer():
        # v > 2.5 is v > 2; v >= 2.5 is v >= 3; v < 2.5 is v < 3; v <= 2.5 is v <= 2
        if math.isinf(number):
            number = _INT64[1] + 1 if number > 0 else _INT64[0] - 1
        else:
            number = math.floor(number) if op in (">", "<=") else math.ceil(number)
    whole = int(number)
    if whole > _INT64[1] or whole < _INT64[0]:
        holds = _ORDER[op](0, whole)  # every 64-bit int compares as 0 does
        return _is(value, "int") if holds else "false"
    return _all(_is(value, "int"), f"{value} {op} {whole}")


def _double_order(value: str, op: str, number: float | int) -> str:
    """``value op number`` for a double ``value``, exactly (an int may fall between doubles)."""
    exact = _exact_double(number)
    if exact is not None:
        return _all(_is(value, "double"), f"{value} {op} {_double(exact)}")
    try:
        nearest = float(number)
    except OverflowError:
        nearest = math.copysign(math.inf, number)
    # Python compares an int and a float exactly; the doubles around the int stand for it.
    above = nearest if nearest > number else math.nextafter(nearest, math.inf)
    below = nearest if nearest < number else math.nextafter(nearest, -math.inf)
    if op in (">", ">="):
        return _all(_is(value, "double"), f"{value} >= {_double(above)}")
    return _all(_is(value, "double"), f"{value} <= {_double(below)}")


def _order(value: str, op: str, literal: Any) -> str:
    if isinstance(literal, str):
        return _all(_is(value, "string"), f"{value} {op} {cel_string(literal)}")
    number = _number(literal)
    if number is None:
        return "false"  # null orders with nothing
    branches = [_int_order(value, op, number), _double_order(value, op, number)]
    holds_true, holds_false = _ORDER[op](1, number), _ORDER[op](0, number)
    if holds_true and holds_false:
        branches.append(_is(value, "bool"))
    elif holds_true or holds_false:
        branches.append(_all(_is(value, "bool"), value if holds_true else f"!{value}"))
    return _any(*(b for b in branches if b != "false"))


def _contains(value: str, literal: Any) -> str:
    equals = _equals("e", literal)
    member = (
        "false" if equals == "false" else _all(_is(value, "list"), f"{value}.exists(e, {equals})")
    )
    if not isinstance(literal, str):
        return member
    return _any(_all(_is(value, "string"), f"{value}.contains({cel_string(literal)})"), member)


def _truthy(value: str) -> str:
    return _any(
        _all(_is(value, "bool"), value),
        _all(_is(value, "int"), f"{value} != 0"),
        _all(_is(value, "double"), f"{value} != 0.0"),
        _all(f"type({value}) in [string, list, map]", f"size({value}) != 0"),
    )


def _test(op: str | None, literal: Any, present: list[str], value: str) -> str:
    """The old clause ``value op literal``, for a value that is there when ``present`` holds."""
    if op in ("==", "!=") and literal is None:
        there = _all(*present)  # null, or not there
        is_null = _is(value, "null_type")
        return is_null if there == "true" else _any(f"!({there})", is_null)
    if op in ("==", "!="):
        return _all(*present, _equals(value, literal))
    if op == "contains":
        return _all(*present, _contains(value, literal))
    if op is None:
        return _all(*present, _truthy(value))
    return _all(*present, _order(value, op, literal))


def _derived_labels_test(op: str | None, literal: Any, parent: str) -> str:
    """The old clause on the labels of the ``detections`` list of map ``parent``.

    They are the ``label`` (null if none) of each map in the list: a list, so it equals
    and orders with no literal, and is true when not empty.
    """
    detections = _select(parent, "detections")
    if op is None:
        return f"{detections}.exists(d, type(d) == map)"
    if op != "contains":
        return "false"
    if literal is None:
        label = _any("!has(d.label)", _is("d.label", "null_type"))
    else:
        label = _all("has(d.label)", _equals("d.label", literal))
    return f"{detections}.exists(d, {_all('type(d) == map', label)})"


def _clause(clause: Clause) -> tuple[str, bool]:
    """The clause as CEL, and whether that is negated (so needs no parentheses)."""
    op, literal, path = clause.op, clause.literal, clause.path
    if len(path) > 1 and path[-1] == "labels":
        # The router derives <step>.labels; deeper, a map's labels are derived here.
        present, parent = _ref(clause.step, path[:-1])
        missing = "true" if op in ("==", "!=") and literal is None else "false"
        listed = _all(_has(parent, "detections"), _is(_select(parent, "detections"), "list"))
        derived = _derived_labels_test(op, literal, parent)
        # derived labels are a list: for `== null` only their absence counts
        otherwise = _all(listed, derived) if missing == "false" else f"!({listed})"
        own = _test(op, literal, [], _select(parent, "labels"))
        inner = f"{_has(parent, 'labels')} ? {own} : {otherwise}"
        cel = f"{_all(*present, _is(parent, 'map'))} ? ({inner}) : {missing}"
    else:
        present, value = _ref(clause.step, path)
        cel = _test(op, literal, present, value)
    if (op == "!=") == clause.negate:
        return cel, cel in ("true", "false")
    return ("true", True) if cel == "false" else (f"!({cel})", True)


def rewrite_condition(text: str) -> str:
    """The CEL condition that holds exactly when the old-syntax ``text`` did.

    Args:
        text: a condition in the old grammar (see the module docstring).

    Returns:
        CEL that :func:`router.conditions.compile_condition` compiles, naming the
        same steps (less those of a clause that is constant, as ``a.b > null``).

    Raises:
        BadCondition: ``text`` is not a valid old condition, or its CEL would be
            too long or too deep to compile.

    Example:
        >>> print(rewrite_condition("meta.format == 'png' or not meta.big"))
        (has(meta.format) && type(meta.format) == string && meta.format == "png") || \
!(has(meta.big) && ((type(meta.big) == bool && meta.big) || ...))
    """
    alternatives = parse_legacy(text)
    several = sum(len(c) for c in alternatives) > 1
    cel = " || ".join(
        " && ".join(
            clause if atomic or not several else f"({clause})"
            for clause, atomic in (_clause(c) for c in conjunction)
        )
        for conjunction in alternatives
    )
    compile_condition(cel)  # not parse_condition: a migration should not fill its cache
    return cel
