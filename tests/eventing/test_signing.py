"""Signed events: what a signature covers, who may sign what, and how keys rotate."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventing.contract import Event, EventType, PipelineContext
from eventing.http import from_http, to_http
from eventing.signing import (
    BadKey,
    Role,
    SigningKey,
    TrustedKeys,
    Unauthenticated,
    part_principal,
)

ROUTER = SigningKey.generate("router-1")
PARTS = SigningKey.generate("parts-1")
ADAPTER = SigningKey.generate("adapter-1")
TRUSTED = TrustedKeys.of(
    {Role.ROUTER: [ROUTER], part_principal("resize"): [PARTS], Role.ADAPTER: [ADAPTER]}
)
CONTEXT = PipelineContext(
    "privacy", 3, "run-1", "faces", "detect_faces", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
)


def _request(**changes: Any) -> Event:
    event = Event(
        EventType.STEP_REQUESTED,
        "/kpipe/router",
        {"inputs": [{"bucket": "uploads", "key": "a.jpg"}], "attempt": 1, "ratio": 0.1},
        context=CONTEXT,
        id="run-1.faces.1.step.requested",
        subject="uploads/a.jpg",
        time=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
    )
    return dataclasses.replace(event, **changes)


def _over_http(event: Event) -> Event:
    headers, body = to_http(event)
    return from_http(headers, body)


def test_a_signed_event_verifies_after_the_http_binding() -> None:
    signed = ROUTER.sign(_request())
    received = _over_http(signed)
    assert received.key_id == "router-1"
    assert TRUSTED.verify(received) == received


def test_a_broker_may_reserialise_the_body_and_rewrite_traceparent() -> None:
    headers, body = to_http(ROUTER.sign(_request()))
    body = json.dumps(json.loads(body), indent=4, sort_keys=True).encode()
    headers["ce-traceparent"] = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    TRUSTED.verify(from_http(headers, body))


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("ce-id", "run-1.faces.2.step.requested"),
        ("ce-source", "/somewhere/else"),
        ("ce-subject", "uploads/b.jpg"),
        ("ce-time", "2026-12-02T12:00:01+00:00"),
        ("ce-kpipepipeline", "other"),
        ("ce-kpipeversion", "4"),
        ("ce-kpiperun", "run-2"),
        ("ce-kpipestep", "blur"),
        ("ce-kpipefunction", "blur"),
        ("ce-kpipekeyid", "parts-1"),
    ],
)
def test_changing_any_signed_attribute_breaks_the_signature(header: str, value: str) -> None:
    headers, body = to_http(ROUTER.sign(_request()))
    headers[header] = value
    with pytest.raises(Unauthenticated):
        TRUSTED.verify(from_http(headers, body))


@pytest.mark.parametrize(
    "data",
    [
        {"inputs": [{"bucket": "uploads", "key": "secret.jpg"}], "attempt": 1, "ratio": 0.1},
        {"inputs": [{"bucket": "uploads", "key": "a.jpg"}], "attempt": 2, "ratio": 0.1},
        {"inputs": [{"bucket": "uploads", "key": "a.jpg"}], "attempt": 1, "ratio": 0.2},
        {"inputs": [{"bucket": "uploads", "key": "a.jpg"}], "attempt": 1},
    ],
)
def test_changing_the_data_breaks_the_signature(data: dict[str, Any]) -> None:
    headers, _ = to_http(ROUTER.sign(_request()))
    with pytest.raises(Unauthenticated):
        TRUSTED.verify(from_http(headers, json.dumps(data).encode()))


def test_an_unsigned_event_is_refused() -> None:
    with pytest.raises(Unauthenticated, match="not signed"):
        TRUSTED.verify(_over_http(_request()))


@pytest.mark.parametrize(
    ("signer", "kind"),
    [
        (PARTS, EventType.STEP_REQUESTED),  # a part may not ask another part for work
        (ADAPTER, EventType.STEP_COMPLETED),  # the adapter may not finish a step
        (ROUTER, EventType.OBJECT_CREATED),  # only the adapter reports uploads
        (PARTS, EventType.OBJECT_CREATED),
    ],
)
def test_a_key_signs_only_what_its_role_may_send(signer: SigningKey, kind: EventType) -> None:
    with pytest.raises(Unauthenticated, match="not a trusted"):
        TRUSTED.verify(_over_http(signer.sign(_request(type=kind))))


def test_an_untrusted_key_with_a_trusted_id_is_refused() -> None:
    impostor = SigningKey.generate("router-1")  # same id, another key
    with pytest.raises(Unauthenticated, match="does not match"):
        TRUSTED.verify(_over_http(impostor.sign(_request())))


def test_rotation_trusts_the_old_and_the_new_key_until_the_old_is_dropped() -> None:
    new = SigningKey.generate("router-2")
    both = TrustedKeys.parse(f"router={ROUTER.public_entry()},router={new.public_entry()}")
    both.verify(_over_http(ROUTER.sign(_request())))
    both.verify(_over_http(new.sign(_request())))
    only_new = TrustedKeys.parse(f"router={new.public_entry()}")
    with pytest.raises(Unauthenticated):
        only_new.verify(_over_http(ROUTER.sign(_request())))


def test_a_private_key_round_trips_through_its_entry() -> None:
    again = SigningKey.parse(ROUTER.entry())
    TRUSTED.verify(_over_http(again.sign(_request())))
    assert "private" in repr(again)
    assert ROUTER.entry().split(":")[1] not in repr(again)


@pytest.mark.parametrize(
    "text",
    [
        "router",
        "router=",
        "router=id",
        "router=id:",
        "router=id:not base64!",
        "router=id:" + "A" * 8,
        "sorcerer=id:" + "A" * 43 + "=",
    ],
)
def test_bad_trusted_key_entries_are_refused(text: str) -> None:
    with pytest.raises(BadKey):
        TrustedKeys.parse(text)
