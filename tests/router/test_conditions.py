from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from functions.catalog import Catalog
from router.conditions import (
    MAX_LENGTH,
    BadCondition,
    compile_condition,
    parse_condition,
    step_reference,
)
from router.spec import PipelineSpec
from router.validation import find_problems, validate_spec
from tests.router.apps import make_client

UPSTREAM: dict[str, dict[str, Any]] = {
    "faces": {"count": 2, "detections": [{"label": "face"}, {"label": "face"}]},
    "objects": {"count": 1, "detections": [{"label": "cat", "score": 0.9}]},
    "empty": {"count": 0, "detections": []},
    "meta": {"format": "png", "nested": {"ok": True}, "ratio": 0.5, "nothing": None},
    "detect-faces": {"count": 3},
    "int": {"count": 4},
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
        ('"cat" in objects.labels', True),
        ('"dog" in objects.labels', False),
        ('!("dog" in objects.labels)', True),
        ("meta.format == 'png'", True),
        ("meta.nested.ok", True),
        ("meta.ratio > 0.25", True),
        ("double(faces.count) > 1.5", True),
        ("has(meta.nested.ok) && !has(meta.nested.missing)", True),
        ("meta.nothing == null", True),
        ("empty.count > 0 || faces.count > 0", True),
        ("empty.count > 0 && faces.count > 0", False),
        ("faces.count > 0 && objects.count > 0 || empty.count > 0", True),
        ('objects.detections.exists(d, d.label == "cat" && d.score > 0.8)', True),
        ("faces.detections.all(d, d.label == 'face')", True),
        ("size(faces.labels) == 2 && faces.labels.exists_one(l, l == 'face') == false", True),
        ("meta.format.startsWith('p') && meta.format.matches('^p.g$')", True),
        ('upstreamSteps["detect-faces"].count == 3', True),
        ("upstreamSteps.int.count == 4 && upstreamSteps.faces.count == 2", True),
        ("faces.count > 01", True),  # CEL allows leading zeros: 01 is 1
        ("true", True),
        ("1 == 2", False),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    assert parse_condition(text).evaluate(UPSTREAM) is expected


@pytest.mark.parametrize(
    "text",
    [
        "meta.missing > 0",  # no such field
        "!(meta.missing > 0)",  # an error is false even under !
        "missing.count > 0",  # a step with no metadata is an empty map
        "meta.format > 3",  # no ordering across types
        "faces.count > 1.5",  # nor across int and double
        "faces.count == 2.0",
        "faces.count",  # not a boolean
        "faces.labels",
        "meta.format",
        "faces.count / 0 == 1",
        "objects.detections[5].label == 'cat'",
        "meta.nothing.deeper",
        "int(meta.format) > 0",
        "timestamp(meta.format) > timestamp(0)",
    ],
)
def test_whatever_is_not_true_is_false(text: str) -> None:
    assert parse_condition(text).evaluate(UPSTREAM) is False


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"faces": None},
        {"faces": [1, 2]},
        {"faces": "text"},
        {"faces": {"count": 2**70}},  # beyond 64 bits: a double
        {"faces": {"count": -(10**400)}},
        {"faces": {"count": float("nan")}},
        {"faces": {"count": {"deeply": {"nested": [[[[]]]]}}}},
        {"faces": {"detections": "not a list", "count": [None]}},
        {"faces": {"detections": [None, 3, {"label": 5}, {}]}},
    ],
    ids=repr,
)
@pytest.mark.parametrize(
    "text", ["faces.count > 0", "'face' in faces.labels", "!(faces.count > 0)", "size(faces) >= 0"]
)
def test_evaluation_never_raises(text: str, metadata: dict[str, Any]) -> None:
    assert parse_condition(text).evaluate(metadata) in (True, False)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (2**70, "faces.count > 1e20"),
        (-(10**400), "faces.count < -1e308"),
        (2**63, "faces.count > 0.0"),
    ],
)
def test_integers_beyond_64_bits_compare_as_doubles(count: int, text: str) -> None:
    assert parse_condition(text).evaluate({"faces": {"count": count}})


@pytest.mark.parametrize(
    ("metadata", "labels"),
    [
        ({"detections": [{"label": "cat"}, {"label": "dog"}]}, ["cat", "dog"]),
        ({"detections": [{"label": "cat"}, {"box": [1, 2, 3, 4]}, "junk"]}, ["cat", None]),
        ({"labels": ["own"], "detections": [{"label": "cat"}]}, ["own"]),
        ({"detections": []}, []),
    ],
)
def test_labels_come_from_detections(metadata: dict[str, Any], labels: list[Any]) -> None:
    cond = parse_condition(f"objects.labels == {labels!r}".replace("None", "null"))
    assert cond.evaluate({"objects": metadata})


def test_no_detections_no_labels() -> None:
    assert not parse_condition("has(objects.labels)").evaluate({"objects": {"detections": 3}})


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("faces.count > 0 || !('cat' in objects.labels)", {"faces", "objects"}),
        ('upstreamSteps["detect-faces"].count > 0', {"detect-faces"}),
        ("upstreamSteps.int.count > 0 && type(faces.count) == int", {"int", "faces"}),
        ("faces.detections.exists(d, d.label == 'face')", {"faces"}),  # d is bound
        ("faces.detections.exists(faces, faces.label == 'x')", {"faces"}),
        ("objects.detections.exists(d, faces.detections.exists(f, f == d))", {"objects", "faces"}),
        (".faces.count > 0", {"faces"}),
        ("1 < 2", set()),
    ],
)
def test_steps_lists_every_referenced_step(text: str, steps: set[str]) -> None:
    assert parse_condition(text).steps == frozenset(steps)


@pytest.mark.parametrize(
    ("step", "reference"),
    [
        ("faces", "faces"),
        ("detect-faces", 'upstreamSteps["detect-faces"]'),
        ("int", 'upstreamSteps["int"]'),
    ],
)
def test_step_reference(step: str, reference: str) -> None:
    assert step_reference(step) == reference
    assert parse_condition(f"has({reference}.count)").steps == {step}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("faces.count >", "expected a value"),
        ("((", "ends too early"),
        ("faces.count ~ 3", "unexpected character '~' at column 13"),
        ("faces.count > 0 and b.c", "CEL writes and, or, not as &&, ||, !"),
        ("faces.labels contains 'cat'", "`x in list`"),
        ("faces.kind == 'open", "unterminated string"),
        ('faces.kind == "\\x"', "invalid escape"),
        ('faces.kind == "\\"', "invalid escape"),  # cel-python would read a backslash
        ("faces.kind == '\\`'", "invalid escape"),
        ("faces.count == 9223372036854775808", "bad literal"),
        ("faces.count == 18446744073709551616u", "bad literal"),
        ("faces.kind == '\\U00110000'", "bad literal"),
        ("faces.kind == b'\\u0100'", "bad literal"),
        ("01", "always a number"),
        ("'a\\\"b'", "always a string"),
        ("[true]", "always a list"),
        ("null", "always null"),
        ("nope(faces.count)", "unknown function 'nope'"),
        ("faces.labels.min() == 'a'", "unknown function 'min'"),
        ("has(faces)", "has() takes one field"),
        ("faces.labels.exists(1, true)", "takes a variable and an expression"),
        ("faces.labels.map(x, y, z)", "takes a variable and an expression"),
        ("a.l.all(x, a.l.all(y, a.l.all(z, true)))", "comprehensions inside one another"),
        ("upstreamSteps[faces.name].count > 0", "takes a quoted step id"),
        ("size(upstreamSteps) > 0", "takes a quoted step id"),
        ("google.protobuf.Int32Value{value: 1} == 1", "not supported"),
        (".size(faces) > 0", "cannot start with '.'"),
        ("(" * 40 + "true" + ")" * 40, "levels deep"),
        ("faces.count > 0 || " * 300 + "true", "longer than"),
    ],
)
def test_bad_conditions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(BadCondition, match=re.escape(message)):
        compile_condition(text)


def test_a_condition_at_the_length_limit_compiles() -> None:
    text = "true" + " " * (MAX_LENGTH - 4)
    assert compile_condition(text).evaluate({}) is True


def test_a_spec_has_a_budget_of_condition_text(spec_data: dict[str, Any], catalog: Catalog) -> None:
    spec_data["steps"][2]["when"] = ["true" + " " * 3996] * 5  # 20000 characters
    _, problems = find_problems(spec_data, catalog)
    assert [(p.path, p.message) for p in problems] == [
        ("steps[2].when[4]", "the spec's conditions are longer than 16384 characters")
    ]


def test_each_text_is_compiled_once() -> None:
    assert parse_condition("faces.count > 7") is parse_condition("faces.count > 7")
    assert compile_condition("faces.count > 7") is not compile_condition("faces.count > 7")


def test_one_condition_evaluates_in_many_threads_at_once() -> None:
    cond = parse_condition("faces.detections.exists(d, d.score > 0.5) && faces.count > 1")
    cases = [{"faces": {"count": n, "detections": [{"score": n / 10}]}} for n in range(10)]
    expected = [cond.evaluate(c) for c in cases]
    assert set(expected) == {True, False}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(cond.evaluate, cases)) == expected


def test_a_missing_field_is_false_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="router.conditions"):
        assert parse_condition("faces.missing > 0").evaluate(UPSTREAM) is False
    assert caplog.records == []


# -- the examples --------------------------------------------------------------------------------

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def _example(name: str, catalog: Catalog) -> PipelineSpec:
    return validate_spec(yaml.safe_load((EXAMPLES[0].parent / name).read_text()), catalog)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_spec(path: Path, catalog: Catalog) -> None:
    assert _example(path.name, catalog).name == path.stem


@pytest.mark.parametrize(
    ("faces", "text", "runs"),
    [
        ({"count": 2}, {"detections": [{"label": "text", "score": 0.9}]}, {"blur", "boxes"}),
        ({"count": 0}, {"detections": [{"label": "text", "score": 0.3}]}, set()),
        ({}, {"count": 0, "detections": []}, set()),
    ],
)
def test_the_redact_example_skips_what_has_nothing_to_do(
    catalog: Catalog, faces: dict[str, Any], text: dict[str, Any], runs: set[str]
) -> None:
    spec = _example("redact.yaml", catalog)
    upstream = {"faces": faces, "text": text}
    ran = {
        step.id
        for step in spec.steps
        if step.when and all(parse_condition(c).evaluate(upstream) for c in step.when)
    }
    assert ran == runs


# -- attacks through the REST API (issue 10 item 4) -------------------------------------------

# The old parser handed these literals to json.loads and answered 500.
LITERALS: dict[str, tuple[int, str]] = {
    "faces.count > 01": (200, ""),
    "faces.kind == 'a\\\"b'": (200, ""),
    'faces.kind == "\\x"': (422, "invalid escape"),
    "01": (422, "always a number"),
    "'a\\\"b'": (422, "always a string"),
    '"\\x"': (422, "invalid escape"),
}


@pytest.fixture
def api(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    app = make_client(tmp_path, catalog).app
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("when", sorted(LITERALS))
def test_odd_literals_are_not_a_500(api: TestClient, spec_data: dict[str, Any], when: str) -> None:
    status, message = LITERALS[when]
    spec_data["steps"][2]["when"] = when
    response = api.put("/v1/pipelines/privacy-blur", json=spec_data)
    assert response.status_code == status, response.text
    checked = api.post("/v1/pipelines/validate", json=spec_data)
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is (status == 200)
    if message:
        [problem] = response.json()["problems"]
        assert problem["field"] == "steps[2].when[0]"
        assert message in problem["message"]
