"""``when:`` conditions: CEL expressions over upstream step metadata.

A condition is a `CEL <https://cel.dev>`_ expression, the language Kubernetes
uses for its validation rules, compiled with cel-python. Each upstream step it
names is a variable bound to that step's metadata map, and ``<step>.labels``
is the list of labels a detector found (from its ``detections`` when its
metadata has no ``labels``). A step id that is not a CEL identifier
(``detect-faces``, or a CEL word such as ``int``) is reached as
``upstreamSteps["detect-faces"]``.

Evaluation is total: a condition holds only when it evaluates to ``true``.
``false``, a result that is not a boolean, a missing field, a type error (CEL
does not compare an int with a double) and any other evaluation error all
count as false, even under ``!``: ``has(faces.count)`` tests for a field.

Compiling checks more than the grammar, so that a condition that passes
validation cannot fail for a reason known in advance: literals must be valid
(string escapes as CEL defines them, integers within 64 bits), functions must
exist, a constant must be a boolean, and the expression must fit
:data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels, with no more than
:data:`MAX_COMPREHENSION_NESTING` comprehensions inside one another (which
keeps the cost of one evaluation polynomial in the size of the metadata).

Example:
    >>> cond = parse_condition('faces.count > 0 && !("cat" in objects.labels)')
    >>> sorted(cond.steps)
    ['faces', 'objects']
    >>> cond.evaluate({"faces": {"count": 2}, "objects": {"detections": [{"label": "dog"}]}})
    True
    >>> parse_condition("faces.missing > 0").evaluate({"faces": {}})
    False
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from router._cel_checks import (
    MAX_COMPREHENSION_NESTING,
    MAX_DEPTH,
    UPSTREAM,
    BadCondition,
    check_constant,
    is_field_name,
    is_variable,
    references,
    syntax_message,
)

__all__ = [
    "MAX_COMPREHENSION_NESTING",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "UPSTREAM",
    "BadCondition",
    "Condition",
    "cel_string",
    "compile_condition",
    "is_field_name",
    "is_variable",
    "parse_condition",
    "step_reference",
]

log = logging.getLogger(__name__)

MAX_LENGTH = 4096
_INT64 = (-(2**63), 2**63 - 1)

# One environment for every condition (creating one raises the interpreter's recursion limit
# to 2500, which CEL's minimum nesting needs). cel-python's compiled runner keeps its state in
# module globals, so the interpreted runner is the one that is safe across threads.
_ENV = celpy.Environment()


def cel_string(text: str) -> str:
    """``text`` as a CEL string literal.

    Example:
        >>> print(cel_string('say "hi"\\n'))
        "say \\"hi\\"\\n"
    """
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def step_reference(step_id: str) -> str:
    """How a condition names the metadata of ``step_id``: ``faces`` or ``upstreamSteps["a-b"]``."""
    return step_id if is_variable(step_id) else f"{UPSTREAM}[{cel_string(step_id)}]"


# -- evaluating --------------------------------------------------------------------------------


# cel-python's constructors check and wrap each value (IntType builds a decorator per call),
# which made converting a detector's metadata cost more than evaluating the condition. JSON
# values need no checks beyond the int64 range, so these build the same objects directly.
_new_int, _new_float, _new_str = int.__new__, float.__new__, str.__new__


def _to_cel(value: Any) -> Any:
    """A JSON value as CEL's; an integer beyond 64 bits becomes a double."""
    if isinstance(value, str):
        return _new_str(celtypes.StringType, value)
    if isinstance(value, bool):
        return _new_int(celtypes.BoolType, value)
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return _new_int(celtypes.IntType, value)
        try:
            return _new_float(celtypes.DoubleType, float(value))
        except OverflowError:
            return _new_float(celtypes.DoubleType, math.inf if value > 0 else -math.inf)
    if isinstance(value, float):
        return _new_float(celtypes.DoubleType, value)
    if isinstance(value, Mapping):
        converted = celtypes.MapType()
        dict.update(
            converted, {_new_str(celtypes.StringType, str(k)): _to_cel(v) for k, v in value.items()}
        )
        return converted
    if isinstance(value, list | tuple):
        return celtypes.ListType([_to_cel(v) for v in value])
    return None


def _step_value(metadata: Any) -> Any:
    """A step's metadata as a CEL map, with ``labels`` from its detections when it has none."""
    if not isinstance(metadata, Mapping):
        metadata = {}
    detections = metadata.get("detections")
    if "labels" not in metadata and isinstance(detections, list):
        labels = [d.get("label") for d in detections if isinstance(d, Mapping)]
        metadata = {**metadata, "labels": labels}
    return _to_cel(metadata)


@dataclass(frozen=True)
class Condition:
    """A compiled ``when:`` expression and the upstream steps it names."""

    text: str
    steps: frozenset[str]
    _program: celpy.Runner = field(repr=False, compare=False)

    def _activation(self, upstream: Mapping[str, Any]) -> dict[str, Any]:
        values = {step: _step_value(upstream.get(step)) for step in self.steps}
        activation: dict[str, Any] = {s: v for s, v in values.items() if is_variable(s)}
        activation[UPSTREAM] = celtypes.MapType(
            {celtypes.StringType(s): v for s, v in values.items()}
        )
        return activation

    def evaluate(self, upstream: Mapping[str, Mapping[str, Any]]) -> bool:
        """True only if the condition evaluates to ``true`` for ``upstream`` (step id -> metadata).

        A step missing from ``upstream`` has empty metadata. Never raises.
        """
        try:
            result = self._program.evaluate(self._activation(upstream))
        except CELEvalError as exc:
            # A missing field or a type error: the documented way to be false.
            log.debug("condition %r is false: %s", self.text, str(exc.args[0])[:200])
            return False
        except Exception as exc:  # cel-python lets some errors out raw
            log.warning("condition %r is false: %s", self.text, type(exc).__name__)
            return False
        return isinstance(result, celtypes.BoolType) and bool(result)


def compile_condition(text: str) -> Condition:
    """Compile a ``when:`` expression (validation's entry point; the router's is parse_condition).

    Raises:
        BadCondition: it is not valid CEL, or would fail whatever the metadata; the
            message says why and where.
    """
    if not text.strip():
        raise BadCondition("empty condition")
    if len(text) > MAX_LENGTH:
        raise BadCondition(f"longer than {MAX_LENGTH} characters")
    try:
        tree = _ENV.compile(text)
    except CELParseError as exc:
        raise BadCondition(syntax_message(text, exc)) from None
    except RecursionError:
        raise BadCondition(f"nested more than {MAX_DEPTH} levels deep") from None
    steps = references(tree)
    check_constant(tree)
    return Condition(text, steps, _ENV.program(tree))


# A compiled condition holds its parse tree, about 1 KB per character of text.
@lru_cache(maxsize=256)
def parse_condition(text: str) -> Condition:
    """:func:`compile_condition`, once per text: the router evaluates conditions on every event.

    Raises:
        BadCondition: as compile_condition.
    """
    return compile_condition(text)
