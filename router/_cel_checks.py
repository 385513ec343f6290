"""What compiling a ``when:`` condition checks beyond CEL's grammar (see router.conditions).

A condition that passes cannot fail for a reason known in advance: its literals
are valid (string escapes as CEL defines them, integers within 64 bits), its
functions exist, it is not a constant other than a boolean, and it fits the
depth and comprehension nesting that keep one evaluation cheap and within the
interpreter's recursion limit. Walking the tree also finds the steps it names.
"""

from __future__ import annotations

import re

from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import celbytes, celstr
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from router.errors import RouterError

_Node = Tree[Token]

#: The map of every step the condition names, for step ids that are not CEL identifiers.
#: Step ids are lower case, so this camel-case name can never be one.
UPSTREAM = "upstreamSteps"
#: Parse-tree levels; cel-python evaluates recursively, about four frames a level.
MAX_DEPTH = 250
MAX_COMPREHENSION_NESTING = 2


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_RESERVED = _words(
    "as break const continue else false for function if import in let loop namespace null "
    "package return true var void while"
)
# Identifiers CEL resolves to types (and `google`, the protobuf package), not to variables.
_TYPE_NAMES = _words(
    "bool bytes double duration google int list map null_type string timestamp type uint"
)
_IDENTIFIER = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_MACROS = frozenset({"all", "exists", "exists_one", "filter", "map"})
_FUNCTIONS = _words(
    "bool bytes double duration dyn has int matches size string timestamp type uint"
)
_METHODS = _words(
    "contains endsWith matches size startsWith getDate getDayOfMonth getDayOfWeek "
    "getDayOfYear getFullYear getHours getMilliseconds getMinutes getMonth getSeconds"
)
# A backslash in a (non-raw) CEL string starts one of these; anything else is group 1.
_ESCAPE = re.compile(
    r"""\\(?:[abfnrtv"'\\]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2})|(\\)"""
)
_QUOTED = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""")
_LEGACY_WORD = re.compile(r"\b(?:and|or|not|contains)\b")
# Tokens that can only start an operand: expected after an operator, never after a value.
_VALUE_TOKENS = frozenset({"IDENT", "INT_LIT", "STRING_LIT", "BANG"})
_CONSTANT_KINDS = {
    "INT_LIT": "a number",
    "UINT_LIT": "a number",
    "FLOAT_LIT": "a number",
    "STRING_LIT": "a string",
    "MLSTRING_LIT": "a string",
    "BYTES_LIT": "bytes",
    "NULL_LIT": "null",
}


class BadCondition(RouterError, ValueError):
    """A ``when:`` expression does not compile; the message says why and where."""

    code = "bad_condition"


def is_variable(step_id: str) -> bool:
    """Whether a condition can name ``step_id`` as a plain variable."""
    return bool(_IDENTIFIER.fullmatch(step_id)) and step_id not in _RESERVED | _TYPE_NAMES


def is_field_name(name: str) -> bool:
    """Whether CEL can select the map key ``name`` with a dot (``m.name``, ``has(m.name)``)."""
    return bool(_IDENTIFIER.fullmatch(name)) and name not in _RESERVED


def syntax_message(text: str, exc: CELParseError) -> str:
    cause = exc.__context__
    where = f"column {exc.column}" if exc.column else "the start"
    if isinstance(cause, UnexpectedToken) and cause.token.type == "$END":
        message = "the condition ends too early"
        if cause.expected & _VALUE_TOKENS:
            message += ": expected a value"
    elif isinstance(cause, UnexpectedToken):
        message = f"unexpected {str(cause.token)[:20]!r} at {where}"
        message += ": expected a value" if cause.expected & _VALUE_TOKENS else ""
    elif isinstance(cause, UnexpectedCharacters) and cause.char in "'\"":
        message = f"unterminated string at {where}"
    elif isinstance(cause, UnexpectedCharacters):
        message = f"unexpected character {cause.char!r} at {where}"
    else:
        message = f"syntax error at {where}"
    if _LEGACY_WORD.search(_QUOTED.sub("", text)):
        message += " (CEL writes and, or, not as &&, ||, ! and `contains` as `x in list`)"
    return message


def _single(node: _Node) -> _Node:
    """The node under a chain of one-child nodes (``expr`` -> ... -> ``literal``)."""
    while len(node.children) == 1 and isinstance(node.children[0], Tree):
        node = node.children[0]
    return node


def _check_escapes(token: Token) -> None:
    text = str(token)
    body = text.lstrip("bB")
    if body[:1] in "rR":
        return  # raw: backslashes are plain characters
    quote = 3 if body[:3] in ('"""', "'''") else 1
    for match in _ESCAPE.finditer(body[quote:-quote]):
        if match.group(1):
            raise BadCondition(f"invalid escape in the string at column {token.column}")


def _check_literal(token: Token) -> None:
    """Convert a literal as evaluation will, so a bad one fails now rather than at each event."""
    if token.type in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
        _check_escapes(token)
    try:
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            celstr(token)
        elif token.type == "BYTES_LIT":
            celbytes(token)
        elif token.type == "INT_LIT":
            celtypes.IntType(str(token))
        elif token.type == "UINT_LIT":
            celtypes.UintType(str(token)[:-1])
        elif token.type == "FLOAT_LIT":
            celtypes.DoubleType(str(token))
    except (ValueError, OverflowError) as exc:
        raise BadCondition(
            f"bad literal {str(token)[:20]!r} at column {token.column}: {exc}"
        ) from None


def _upstream_key(node: _Node, bound: frozenset[str]) -> str | None:
    """The step id in ``upstreamSteps.id`` or ``upstreamSteps["id"]``; None if not that."""
    first, last = node.children[0], node.children[-1]
    if not isinstance(first, Tree):
        return None
    root = _single(first)
    if root.data not in ("ident", "dot_ident") or str(root.children[0]) != UPSTREAM:
        return None
    if root.data == "ident" and UPSTREAM in bound:
        return None
    if node.data == "member_dot":
        return str(last)
    key = _single(last) if isinstance(last, Tree) else None
    token = key.children[0] if key is not None and key.data == "literal" else None
    if not isinstance(token, Token) or token.type not in ("STRING_LIT", "MLSTRING_LIT"):
        raise BadCondition(f'{UPSTREAM} takes a quoted step id, as {UPSTREAM}["detect-faces"]')
    _check_literal(token)
    return str(celstr(token))


def _call(node: _Node) -> tuple[str, list[_Node]]:
    """A call's name and argument expressions (``ident_arg`` or ``member_dot_arg``)."""
    head = 1 if node.data == "member_dot_arg" else 0
    rest = node.children[head + 1 :]
    args = rest[0].children if rest and isinstance(rest[0], Tree) else []
    return str(node.children[head]), [a for a in args if isinstance(a, Tree)]


def _comprehension(name: str, args: list[_Node], loops: int) -> str:
    """The variable a macro binds, once its shape and nesting are checked."""
    variable = _single(args[0]) if len(args) == 2 else None
    if variable is None or variable.data != "ident":
        raise BadCondition(f"{name}() takes a variable and an expression, as {name}(x, x > 0)")
    if loops >= MAX_COMPREHENSION_NESTING:
        raise BadCondition(
            f"more than {MAX_COMPREHENSION_NESTING} comprehensions inside one another"
        )
    return str(variable.children[0])


def references(tree: _Node) -> frozenset[str]:
    """The step ids ``tree`` refers to; BadCondition for what evaluation could not run."""
    steps: set[str] = set()
    # (node, names bound by the comprehensions around it, how many there are, depth)
    todo: list[tuple[_Node, frozenset[str], int, int]] = [(tree, frozenset(), 0, 1)]
    while todo:
        node, bound, loops, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise BadCondition(f"nested more than {MAX_DEPTH} levels deep")
        kind = node.data
        below = [(c, bound, loops) for c in node.children if isinstance(c, Tree)]
        if kind == "literal" and isinstance(node.children[0], Token):
            _check_literal(node.children[0])
        elif kind in ("ident", "dot_ident"):
            name = str(node.children[0])
            free = kind == "dot_ident" or name not in bound
            if free and name == UPSTREAM:
                raise BadCondition(f'{UPSTREAM} takes a quoted step id, as {UPSTREAM}["a-b"]')
            if free and name not in _TYPE_NAMES:
                steps.add(name)
        elif (
            kind in ("member_dot", "member_index")
            and (key := _upstream_key(node, bound)) is not None
        ):
            steps.add(key)
            below = []
        elif kind == "member_object":
            raise BadCondition("message construction (`Type{field: value}`) is not supported")
        elif kind == "dot_ident_arg":
            raise BadCondition("a function call cannot start with '.'")
        elif kind == "ident_arg":
            name, args = _call(node)
            if name not in _FUNCTIONS:
                raise BadCondition(f"unknown function {name!r}")
            if name == "has" and (len(args) != 1 or _single(args[0]).data != "member_dot"):
                raise BadCondition("has() takes one field, as has(faces.count)")
        elif kind == "member_dot_arg":
            name, args = _call(node)
            if name in _MACROS:
                variable = _comprehension(name, args, loops)
                target = below[0]
                below = [target, (args[1], bound | {variable}, loops + 1)]
            elif name not in _METHODS:
                raise BadCondition(f"unknown function {name!r}")
        todo.extend((child, names, n, depth + 1) for child, names, n in below)
    return frozenset(steps)


def check_constant(tree: _Node) -> None:
    top = tree
    while top.data not in ("list_lit", "map_lit") and len(top.children) == 1:
        child = top.children[0]
        if not isinstance(child, Tree):
            break
        top = child
    kind = None
    if top.data == "literal" and isinstance(top.children[0], Token):
        kind = _CONSTANT_KINDS.get(top.children[0].type)
    elif top.data in ("list_lit", "map_lit"):
        kind = "a list" if top.data == "list_lit" else "a map"
    if kind:
        raise BadCondition(f"a condition must be true or false, and this is always {kind}")
