"""Hypothesis strategies the fuzz tests share: JSON values, CEL-ish text, near-specs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from functions.catalog import Catalog

CATALOG = Catalog()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Pieces of CEL (and of the old syntax), so that many draws compile and reach evaluation.
_cel_pieces = st.sampled_from(
    [
        *["a", "b", "faces", "x", "e", ".", "count", "labels", "detections", "label", " "],
        *["(", ")", "[", "]", "{", "}", ",", ":", "?", "!", "-", "+", "*", "/", "%"],
        *["&&", "||", "==", "!=", "<", ">", "<=", ">=", " in ", " and ", " not ", " contains "],
        *["has", "size", "exists", "all", "map", "filter", "exists_one", "min", "reduce"],
        *["0", "1", "01", "0x1F", "1u", "2.5", "1e9", "-1", "9223372036854775808", "1e999"],
        *["'a'", '"b"', "'a\\\"b'", '"\\x"', "'''m'''", 'b"z"', 'r"\\q"', "'\\u00e9'"],
        *["true", "false", "null", "upstreamSteps", '"a-b"', "int", "type", "double", "string"],
        *["matches", "'^a+$'", "contains", "startsWith", "timestamp", "duration", "'1s'", "dyn"],
        *["\\", "'", '"', "\n", "google", "//", "getHours()", "'\\U00110000'", "\x00"],
    ]
)
cel_texts = st.lists(_cel_pieces, max_size=30).map("".join) | st.text(max_size=60)
functions = st.sampled_from([*CATALOG.names(), "nope", "http://169.254.169.254/", ""])
step_ids = st.sampled_from(["a", "b", "c", "A", "", "a b"]) | st.text(max_size=5)
steps = st.fixed_dictionaries(
    {"id": step_ids, "function": functions},
    optional={
        "params": st.dictionaries(
            st.sampled_from(["width", "max_side", "format", "labels", "x"]), json_values, max_size=3
        ),
        "after": st.lists(step_ids, max_size=3) | json_values,
        "when": st.sampled_from(["a.count > 0", "'face' in b.labels", "((", "x", "01"])
        | cel_texts
        | st.lists(cel_texts, max_size=3)
        | json_values,
        "fuse": st.booleans() | json_values,
    },
)
specs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["p", "Bad", ""]) | json_values,
        "trigger": st.fixed_dictionaries(
            {"bucket": st.sampled_from(["uploads", "processed", "X"])},
            optional={"prefix": st.text(max_size=5)},
        )
        | json_values,
        "output": st.fixed_dictionaries({"bucket": st.sampled_from(["uploads", "processed"])})
        | json_values,
        "steps": st.lists(steps, max_size=5) | json_values,
        "fuse": st.booleans() | json_values,
    },
)

_texts = st.text(min_size=1, max_size=3)
_ref = st.fixed_dictionaries({"bucket": _texts, "key": _texts})
# Each field of some event payload, well typed.
payload_fields: dict[str, st.SearchStrategy[Any]] = {
    "bucket": _texts,
    "key": _texts,
    "size": st.integers(min_value=0),
    "etag": _texts,
    "outputs": st.lists(_ref, max_size=2),
    "metadata": st.dictionaries(_texts, json_values, max_size=2),
    "id": _texts,
    "function": _texts,
    "params": st.dictionaries(_texts, json_values, max_size=2),
    "source": _ref,
    "inputs": st.lists(_ref, min_size=1, max_size=2),
    "output": _ref,
    "calls": st.lists(
        st.fixed_dictionaries({"id": _texts, "function": _texts}), min_size=1, max_size=2
    ),
    "upstream": st.dictionaries(
        _texts, st.fixed_dictionaries({"outputs": st.lists(_ref, max_size=1)}), max_size=2
    ),
    "final": st.booleans(),
    "attempt": st.integers(min_value=1),
    "duration_ms": st.floats(allow_nan=False),
    "code": _texts,
    "message": _texts,
    "retryable": st.booleans(),
    "run": _texts,
    "pipeline": _texts,
    "version": st.integers(),
    "status": _texts,
    "error": st.none() | st.fixed_dictionaries({"code": _texts, "message": _texts}),
    "content_type": _texts,
    "version_id": st.none() | _texts,
    "sequencer": st.none() | _texts,
}
