"""``when:`` conditions: small boolean expressions over upstream step metadata.

Grammar (``or`` binds looser than ``and``)::

    expr    := conj ("or" conj)*
    conj    := clause ("and" clause)*
    clause  := ["not"] ref [op literal]
    ref     := step "." field ("." field)*
    op      := == | != | > | >= | < | <= | contains
    literal := number | "string" | 'string' | true | false | null

A ref names an upstream step's metadata, e.g. ``faces.count``. For a
detector, ``<step>.labels`` is the list of labels it found even when its
metadata does not spell it out. A missing field is ``null``; ordering
comparisons with ``null`` are false.

Example:
    >>> cond = parse_condition("faces.count > 0 and not objects.labels contains 'cat'")
    >>> cond.steps
    frozenset({'faces', 'objects'})
    >>> cond.evaluate({"faces": {"count": 2}, "objects": {"detections": []}})
    True
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.errors import RouterError


class BadCondition(RouterError, ValueError):
    """A ``when:`` expression does not parse."""

    code = "bad_condition"


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|>=|<=|>|<)
      | (?P<word>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)
    )""",
    re.VERBOSE,
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_LITERAL_WORDS = {"true": True, "false": False, "null": None}


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


def _lookup(metadata: Mapping[str, Any], path: tuple[str, ...]) -> Any:
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
        return isinstance(left, list | str) and right in left
    if op in ("==", "!="):
        return _OPS[op](left, right)
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return False


@dataclass(frozen=True)
class _Clause:
    negate: bool
    step: str
    path: tuple[str, ...]
    op: str | None
    literal: Any

    def evaluate(self, upstream: Mapping[str, Mapping[str, Any]]) -> bool:
        value = _lookup(upstream.get(self.step, {}), self.path)
        result = bool(value) if self.op is None else _compare(self.op, value, self.literal)
        return not result if self.negate else result


@dataclass(frozen=True)
class Condition:
    """A parsed ``when:`` expression: a disjunction of conjunctions of clauses."""

    text: str
    alternatives: tuple[tuple[_Clause, ...], ...]

    @property
    def steps(self) -> frozenset[str]:
        return frozenset(c.step for conj in self.alternatives for c in conj)

    def evaluate(self, upstream: Mapping[str, Mapping[str, Any]]) -> bool:
        """True if the condition holds for ``upstream`` (step id -> metadata)."""
        return any(all(c.evaluate(upstream) for c in conj) for conj in self.alternatives)


def _literal(kind: str, text: str) -> Any:
    if kind in ("num", "str"):
        if kind == "str" and text.startswith("'"):
            text = '"' + text[1:-1].replace('"', '\\"').replace("\\'", "'") + '"'
        return json.loads(text)
    if kind == "word" and text in _LITERAL_WORDS:
        return _LITERAL_WORDS[text]
    raise BadCondition(f"expected a number, a quoted string, true, false or null, got {text!r}")


def parse_condition(text: str) -> Condition:
    """Parse a ``when:`` expression; BadCondition says what is wrong."""
    tokens = _tokens(text)
    if not tokens:
        raise BadCondition("empty condition")
    alternatives: list[tuple[_Clause, ...]] = []
    clauses: list[_Clause] = []
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
        clauses.append(_Clause(bool(negate), step, tuple(path), op, literal))
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
    return Condition(text, tuple(alternatives))
