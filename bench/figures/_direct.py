"""Step requests sent straight to a part, as the broker would deliver them, without the broker.

Figures use it where the broker is what they leave out: the cold start of a
lone part, the part's own share of a hop, and the part that no pipeline can
finish (``detect_objects`` without a YOLO model answers 503 until the
request is ``KPIPE_RETRY_FOR_S`` old, so the broker would keep redelivering).

A part acts only on requests the router signed, for objects inside their
run: each request here is signed with the router's key from the stack's
``KPIPE_HOME/keys`` (the benchmark stands in for the router), reads the
run's source and writes under its pipeline's prefix (``bench-direct/``).

Example:
    >>> key = SigningKey.generate("router-1")
    >>> headers, body = step_request(key, "resize", ObjectRef("uploads", "a.png"),
    ...     "a.png", {"max_side": 64}, "r1")
    >>> headers["ce-type"], headers["ce-kpipekeyid"]
    ('io.kpipe.step.requested', 'router-1')
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from eventing.contract import (
    Event,
    EventType,
    ObjectRef,
    PipelineContext,
    StepCall,
    StepOutput,
    StepRequest,
    pipeline_prefix,
)
from eventing.http import to_http
from eventing.signing import SigningKey

PIPELINE = "bench-direct"
OUTPUT_BUCKET = "processed"


def step_request(
    key: SigningKey,
    part: str,
    source: ObjectRef,
    output_name: str,
    params: dict[str, Any],
    run: str,
    upstream: Mapping[str, StepOutput] | None = None,
) -> tuple[dict[str, str], bytes]:
    """A signed, binary-mode ``step.requested`` asking ``part`` to process ``source``.

    Args:
        key: the router's signing key.
        part: the function to ask.
        source: the run's source object, the step's only input.
        output_name: where the output goes, under the pipeline's prefix of ``processed``.
        params: the step's params.
        run: the run id the request claims.
        upstream: what earlier steps of the run produced (their detections), by step id.
    """
    request = StepRequest(
        source=source,
        inputs=(source,),
        calls=(StepCall("s0", part, params),),
        output=ObjectRef(OUTPUT_BUCKET, pipeline_prefix(PIPELINE) + output_name),
        final=True,
        upstream=dict(upstream or {}),
    )
    context = PipelineContext(PIPELINE, 1, run, "s0", part)
    event = Event(EventType.STEP_REQUESTED, "/bench", request.to_data(), context)
    return to_http(key.sign(event))


@dataclass(frozen=True)
class Answer:
    """A part's answer to one direct request.

    Attributes:
        status: the HTTP status (200 with an event, 503 to be redelivered ...).
        event_type: the reply's ``ce-type`` (None without an event).
        round_trip_ms: from sending the request to reading the whole answer.
        duration_ms: the part's own time in ``run_request``, from its reply (None without one).
    """

    status: int
    event_type: str | None
    round_trip_ms: float
    duration_ms: float | None


def post(client: httpx.Client, url: str, request: tuple[dict[str, str], bytes]) -> Answer:
    """POST one step request to a part and time it."""
    headers, body = request
    started = time.perf_counter()
    reply = client.post(url, headers=headers, content=body)
    elapsed = (time.perf_counter() - started) * 1000.0
    duration = None
    if reply.headers.get("ce-type") == EventType.STEP_COMPLETED.value:
        duration = float(reply.json().get("duration_ms", 0.0))
    return Answer(reply.status_code, reply.headers.get("ce-type"), elapsed, duration)
