"""Knative's new-style trigger ``filters`` (exact, prefix, suffix, all, any, not).

Each expression is a mapping with exactly one dialect key. CESQL is not
supported by the local broker and is refused when the config is loaded, so a
trigger never silently matches everything.

Example:
    >>> matches({"prefix": {"type": "io.kpipe."}}, {"type": "io.kpipe.step.failed"})
    True
    >>> matches({"not": {"exact": {"type": "x"}}}, {"type": "x"})
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kpipe.local.broker.errors import InvalidBrokerConfig

_STRING_DIALECTS = ("exact", "prefix", "suffix")
_LIST_DIALECTS = ("all", "any")
DIALECTS = (*_STRING_DIALECTS, *_LIST_DIALECTS, "not")


def check_filter(expression: Any, where: str) -> None:
    """Raise InvalidBrokerConfig if ``expression`` is not a supported filter."""
    if not isinstance(expression, Mapping) or len(expression) != 1:
        raise InvalidBrokerConfig("each filter needs exactly one dialect key", where)
    ((dialect, body),) = expression.items()
    if dialect == "cesql":
        raise InvalidBrokerConfig("cesql filters are not supported by the local broker", where)
    if dialect in _STRING_DIALECTS:
        if (
            not isinstance(body, Mapping)
            or not body
            or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in body.items()
            )
        ):
            raise InvalidBrokerConfig(
                f"{dialect} needs non-empty attribute names and values", where
            )
    elif dialect in _LIST_DIALECTS:
        if not isinstance(body, list) or not body:
            raise InvalidBrokerConfig(f"{dialect} needs at least one nested filter", where)
        for nested in body:
            check_filter(nested, where)
    elif dialect == "not":
        check_filter(body, where)
    else:
        raise InvalidBrokerConfig(f"unknown filter dialect {dialect!r}", where)


def matches(expression: Mapping[str, Any], attributes: Mapping[str, str]) -> bool:
    """Evaluate one checked filter expression against an event's attributes."""
    ((dialect, body),) = expression.items()
    if dialect == "exact":
        return all(attributes.get(k) == v for k, v in body.items())
    if dialect == "prefix":
        return all(
            str(attributes.get(k, "")).startswith(v) and k in attributes for k, v in body.items()
        )
    if dialect == "suffix":
        return all(
            str(attributes.get(k, "")).endswith(v) and k in attributes for k, v in body.items()
        )
    if dialect == "all":
        return matches_all(body, attributes)
    if dialect == "any":
        return any(matches(nested, attributes) for nested in body)
    if dialect == "not":
        return not matches(body, attributes)
    raise InvalidBrokerConfig(f"unknown filter dialect {dialect!r}")


def matches_all(expressions: Iterable[Mapping[str, Any]], attributes: Mapping[str, str]) -> bool:
    """True if every expression matches (an empty list matches everything)."""
    return all(matches(e, attributes) for e in expressions)
