"""Property tests: conditions, the spec validator, the event and notification parsers, the
event contract and output keys. Each takes any input and fails only with its own error."""

from __future__ import annotations

import contextlib
import json
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    RunFinished,
    StepCall,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
)
from eventing.errors import MalformedEvent, MalformedNotification
from eventing.http import from_http, parse_cloudevent, to_http
from eventing.notifications import notification_for, parse_notification
from functions.step import output_ref
from router import keys
from router.conditions import BadCondition, compile_condition
from router.errors import SpecInvalid
from router.spec import NAME_PATTERN, STEP_ID_PATTERN
from router.validation import find_problems, validate_spec
from tests.reliability._strategies import CATALOG, cel_texts, json_values, payload_fields, specs

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

metadata = st.dictionaries(
    st.sampled_from(["a", "b", "faces", "x", "e", "a-b", "int"]),
    st.dictionaries(st.sampled_from(["count", "labels", "detections", "x", "e"]), json_values)
    | json_values,
    max_size=4,
)


@FUZZ
@given(text=cel_texts, upstream=metadata)
def test_a_condition_compiles_or_says_why_and_evaluates_to_a_bool(
    text: str, upstream: dict[str, Any]
) -> None:
    try:
        condition = compile_condition(text)
    except BadCondition:
        return
    assert condition.evaluate(upstream) in (True, False)


@FUZZ
@given(data=specs | json_values)
def test_the_validator_reports_problems_and_never_crashes(data: Any) -> None:
    spec, problems = find_problems(data, CATALOG)
    assert spec is not None or problems
    for problem in problems:
        assert isinstance(problem.path, str)
        assert problem.message
    if problems or spec is None:
        with pytest.raises(SpecInvalid):
            validate_spec(data, CATALOG)
    else:
        assert validate_spec(data, CATALOG) == spec


header_names = st.sampled_from(
    [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "content-type",
        "ce-kpiperun",
        "ce-kpipeversion",
        "ce-kpipestep",
        "ce-kpipefunction",
        "ce-datacontenttype",
    ]
) | st.text(min_size=1, max_size=12)
header_values = st.sampled_from(
    [
        "1.0",
        "0.3",
        "io.kpipe.step.completed",
        "io.kpipe.object.created",
        "application/json",
        "application/cloudevents+json",
        "text/plain",
        "2026-01-01T00:00:00Z",
        "%ZZ",
        "%C3%BC",
    ]
) | st.text(max_size=20)
bodies = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())


@FUZZ
@given(headers=st.dictionaries(header_names, header_values, max_size=10), body=bodies)
def test_from_http_raises_only_malformed_event(headers: dict[str, str], body: bytes) -> None:
    try:
        event = from_http(headers, body)
    except MalformedEvent:
        return
    assert isinstance(event, Event)


@FUZZ
@given(
    headers=st.dictionaries(header_names | st.text(max_size=20), header_values, max_size=10),
    body=bodies,
)
def test_parse_cloudevent_raises_only_malformed_event(headers: dict[str, str], body: bytes) -> None:
    with contextlib.suppress(MalformedEvent):
        parse_cloudevent(headers, body)


# The fields each payload reads.
FIELDS: dict[type, tuple[str, ...]] = {
    ObjectRef: ("bucket", "key"),
    ObjectCreated: ("bucket", "key", "size", "etag", "content_type", "version_id", "sequencer"),
    StepOutput: ("outputs", "metadata"),
    StepCall: ("id", "function", "params"),
    StepRequest: ("source", "inputs", "calls", "output", "final", "upstream", "attempt"),
    StepCompleted: ("outputs", "metadata", "duration_ms"),
    StepFailed: ("code", "message", "retryable"),
    RunFinished: ("run", "pipeline", "version", "status", "source", "outputs", "error"),
}
_anything = json_values | st.lists(json_values, max_size=2) | st.integers()
REMOVED = object()


KINDS = [
    ObjectRef,
    ObjectCreated,
    StepOutput,
    StepCall,
    StepRequest,  # found here: a call that is not a map (was an AttributeError)
    StepCompleted,
    StepFailed,
    RunFinished,  # found here: outputs that is not a list, e.g. 0 (was a TypeError)
]


# Unshrunk: the payloads are small enough to read, and the known crashes xfail sooner.
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: getattr(kind, "__name__", ""))
@settings(FUZZ, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(draw=st.data())
def test_the_contract_reads_any_mapping_or_raises_malformed_event(
    kind: Any, draw: st.DataObject
) -> None:
    # A good payload with one of its fields replaced by anything at all (a number where a
    # list belongs, a list where a map belongs...) or removed, and perhaps another.
    names = st.sampled_from(FIELDS[kind])
    data = draw.draw(st.fixed_dictionaries(payload_fields))
    for name in draw.draw(st.lists(names, min_size=1, max_size=2)):
        value = draw.draw(st.none().map(lambda _: REMOVED) | _anything)
        data[name] = value
        if value is REMOVED:
            del data[name]
    try:
        parsed = kind.from_data(data)
    except MalformedEvent:
        return
    assert isinstance(parsed, kind)


record = st.fixed_dictionaries(
    {},
    optional={
        "eventName": st.sampled_from(
            ["s3:ObjectCreated:Put", "ObjectCreated:Copy", "s3:ObjectRemoved:Delete"]
        )
        | json_values,
        "s3": st.fixed_dictionaries(
            {},
            optional={
                "bucket": st.fixed_dictionaries(
                    {}, optional={"name": st.text(max_size=5) | json_values}
                ),
                "object": st.fixed_dictionaries(
                    {},
                    optional={
                        "key": st.text(max_size=10) | json_values,
                        "size": st.integers() | json_values,
                        "eTag": st.text(max_size=5) | json_values,
                        "contentType": json_values,
                        "versionId": json_values,
                        "sequencer": json_values,
                        "userMetadata": json_values,
                    },
                ),
            },
        )
        | json_values,
    },
)
notifications = st.fixed_dictionaries(
    {},
    optional={
        "Records": st.lists(record | json_values, max_size=3) | json_values,
        "Event": json_values,
    },
)


@FUZZ
@given(body=notifications | json_values)
def test_parse_notification_raises_only_malformed_notification(body: Any) -> None:
    for form in (body, json.dumps(body), json.dumps(body).encode()):
        try:
            created = parse_notification(form)
        except MalformedNotification:
            continue
        assert all(isinstance(o, ObjectCreated) and o.bucket and o.key for o in created)


@FUZZ
@given(body=st.binary(max_size=300))
def test_parse_notification_takes_any_bytes(body: bytes) -> None:
    with contextlib.suppress(MalformedNotification):
        parse_notification(body)


_key_parts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30
) | st.sampled_from(
    ["/", ".", "..", "../", "%2F", "%", "+", " ", "\x00", "\n", "_runs/", "a" * 300]
)
s3_keys = (
    st.lists(_key_parts, min_size=1, max_size=20)
    .map("".join)
    .filter(lambda k: 0 < len(k.encode()) <= 1024)
)


def _assert_safe(pipeline: str, key: str) -> None:
    assert key.startswith(f"{pipeline}/")
    assert ".." not in key
    assert "//" not in key
    assert not key.endswith("/")
    assert "\x00" not in key
    assert "\n" not in key
    assert len(key.encode()) <= keys.MAX_KEY_BYTES
    assert all(segment not in ("", ".", "..") for segment in key.split("/"))


@FUZZ
@given(
    pipeline=st.from_regex(NAME_PATTERN, fullmatch=True),
    step=st.none() | st.from_regex(STEP_ID_PATTERN, fullmatch=True),
    source=s3_keys,
    extension=st.sampled_from([".jpg", ".png", ".webp"]),
)
def test_output_keys_never_escape_the_pipeline(
    pipeline: str, step: str | None, source: str, extension: str
) -> None:
    final = keys.final_key(pipeline, source, step)
    _assert_safe(pipeline, final)
    assert not final.startswith(f"{pipeline}/{keys.RUNS_DIR}/")  # never among intermediates
    assert final == keys.final_key(pipeline, source, step)  # deterministic
    run = keys.run_id(pipeline, 1, "uploads", source, "etag")
    middle = keys.intermediate_key(pipeline, run, step or "s", source)
    _assert_safe(pipeline, middle)
    assert middle.startswith(f"{pipeline}/_runs/{run}/")
    # what a part finally writes: the key with the encoded format's extension
    for key in (final, middle):
        written = output_ref(ObjectRef("processed", key), extension).key
        _assert_safe(pipeline, written)
        assert PurePosixPath(written).parent == PurePosixPath(key).parent


@FUZZ
@given(key=s3_keys, subject=st.text(max_size=100))
def test_any_key_survives_notifications_and_event_headers(key: str, subject: str) -> None:
    body = notification_for("uploads", key, 1, "etag")
    [obj] = parse_notification(json.dumps(body))
    assert obj.key == key
    headers, payload = to_http(obj.to_event("/kpipe/s3/uploads"))
    for value in headers.values():
        value.encode("ascii")  # a valid HTTP header value
    event = from_http(headers, payload)
    assert event.subject == f"uploads/{key}"
    assert ObjectCreated.from_data(event.data).key == key
    other = Event(EventType.STEP_FAILED, "/t", {"code": "x"}, subject=subject)
    assert from_http(*to_http(other)).subject == (subject or None)


@pytest.mark.parametrize("subject", ["uploads/ünïcødé 写真.jpg", 'uploads/100% "sure".jpg', "a\nb"])
def test_non_ascii_subjects_are_percent_encoded(subject: str) -> None:
    headers, body = to_http(Event(EventType.STEP_FAILED, "/t", {"code": "x"}, subject=subject))
    headers["ce-subject"].encode("ascii")
    assert from_http(headers, body).subject == subject
