"""Binary-mode HTTP binding of kpipe events, on the cloudevents SDK.

This is the one module that reads or writes CloudEvents headers. Parts, the
router and the broker call :func:`from_http` on a request and
:func:`to_http` on a reply.

Example:
    >>> from eventing.contract import Event, EventType
    >>> headers, body = to_http(Event(EventType.STEP_FAILED, "/test", {"code": "x"}))
    >>> headers["ce-type"]
    'io.kpipe.step.failed'
    >>> from_http(headers, body).data
    {'code': 'x'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent
from cloudevents.http import from_http as _ce_from_http

from eventing.contract import (
    EXT_FUNCTION,
    EXT_KEYID,
    EXT_PIPELINE,
    EXT_RUN,
    EXT_SIGNATURE,
    EXT_STEP,
    EXT_TRACEPARENT,
    EXT_VERSION,
    Event,
    EventType,
    PipelineContext,
)
from eventing.errors import MalformedEvent

_KNOWN_TYPES = {t.value for t in EventType}
# CloudEvents HTTP binding 3.1.3.2: in ``ce-*`` headers, space, '"', '%' and
# anything outside printable ASCII are percent-encoded (UTF-8); an object key
# with a non-ASCII character in ``subject`` is otherwise not a valid header.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """True if the headers carry a binary-mode (or structured) CloudEvent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return "ce-specversion" in lowered or lowered.get("content-type", "").startswith(
        "application/cloudevents"
    )


def to_cloudevent(event: Event) -> CloudEvent:
    """The SDK's CloudEvent for a kpipe event."""
    attributes: dict[str, Any] = {
        "type": event.type.value,
        "source": event.source,
        "id": event.id,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
    }
    if event.subject:
        attributes["subject"] = event.subject
    if event.key_id:
        attributes[EXT_KEYID] = event.key_id
    if event.signature:
        attributes[EXT_SIGNATURE] = event.signature
    ctx = event.context
    if ctx is not None:
        attributes[EXT_PIPELINE] = ctx.pipeline
        attributes[EXT_VERSION] = str(ctx.version)
        attributes[EXT_RUN] = ctx.run
        if ctx.step:
            attributes[EXT_STEP] = ctx.step
        if ctx.function:
            attributes[EXT_FUNCTION] = ctx.function
        if ctx.traceparent:
            attributes[EXT_TRACEPARENT] = ctx.traceparent
    return CloudEvent(attributes, event.data)


def to_http(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in binary content mode."""
    return encode_binary(to_cloudevent(event))


def encode_binary(ce: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and body of any CloudEvent in binary content mode.

    Args:
        ce: the event; JSON data is serialised, bytes are sent as they are.

    Returns:
        The ``ce-*`` and ``content-type`` headers, and the body (empty if no data).
    """
    raw_headers, body = to_binary(ce)
    headers = {
        k: quote(str(v), safe=_HEADER_SAFE) if k.lower().startswith("ce-") else v
        for k, v in raw_headers.items()
    }
    if body is None:
        return headers, b""
    return headers, body if isinstance(body, bytes) else str(body).encode()


def from_cloudevent(ce: CloudEvent) -> Event:
    """A kpipe event from the SDK's CloudEvent; MalformedEvent if it is not one."""
    ce_type = ce["type"]
    if ce_type not in _KNOWN_TYPES:
        raise MalformedEvent(f"unknown event type {ce_type!r}", field="type")
    data = ce.data
    if not isinstance(data, dict):
        raise MalformedEvent("event data must be a JSON object", field="data")
    attrs = ce.get_attributes()
    context = None
    if EXT_RUN in attrs:
        try:
            version = int(attrs.get(EXT_VERSION, ""))
        except ValueError:
            raise MalformedEvent(f"{EXT_VERSION} must be an integer", field=EXT_VERSION) from None
        context = PipelineContext(
            pipeline=str(attrs.get(EXT_PIPELINE, "")),
            version=version,
            run=str(attrs[EXT_RUN]),
            step=str(attrs.get(EXT_STEP, "")),
            function=str(attrs.get(EXT_FUNCTION, "")),
            traceparent=attrs.get(EXT_TRACEPARENT),
        )
    time_attr = attrs.get("time")
    try:
        time = datetime.fromisoformat(str(time_attr).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent("event time is not an RFC 3339 timestamp", field="time") from None
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)  # RFC 3339 wants an offset; read none as UTC
    key_id, signature = attrs.get(EXT_KEYID), attrs.get(EXT_SIGNATURE)
    return Event(
        type=EventType(ce_type),
        source=str(ce["source"]),
        data=data,
        context=context,
        id=str(ce["id"]),
        subject=attrs.get("subject"),
        time=time,
        key_id=str(key_id) if key_id is not None else None,
        signature=str(signature) if signature is not None else None,
    )


def parse_cloudevent(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse any CloudEvent (binary or structured mode); MalformedEvent if invalid."""
    decoded = {k: unquote(v) if k.lower().startswith("ce-") else v for k, v in headers.items()}
    try:
        ce = _ce_from_http(decoded, body)
    except (GenericException, ValueError, TypeError, KeyError) as exc:
        raise MalformedEvent(f"not a valid CloudEvent: {exc}") from None
    if ce.get("specversion") != "1.0":
        raise MalformedEvent("only CloudEvents specversion 1.0 is accepted", field="specversion")
    content_type = str(ce.get("datacontenttype") or "application/json")
    # The SDK has already decoded valid JSON (a JSON string becomes str); bytes
    # left under a JSON content type are a body that failed to parse.
    if isinstance(ce.data, bytes) and "json" in content_type:
        try:
            ce.data = json.loads(ce.data)
        except ValueError:
            raise MalformedEvent("event data is not valid JSON", field="data") from None
    return ce


def from_http(headers: Mapping[str, str], body: bytes) -> Event:
    """Parse a kpipe event from an HTTP request; MalformedEvent if it is not one."""
    return from_cloudevent(parse_cloudevent(headers, body))
