"""The step SDK's handle_http: which deliveries get which reply."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from eventing.contract import (
    Event,
    EventType,
    ObjectRef,
    PipelineContext,
    StepRequest,
    step_event_id,
)
from eventing.http import from_http, to_http
from functions.catalog import Catalog
from functions.runtime import PerThreadInference, StepRuntime
from functions.step import handle_http, health_reply
from functions.store import MinioStore
from kpipe.settings import ImageSettings, InferenceSettings, ObjectStoreSettings

BUCKET = "uploads"
Upload = Callable[[str, bytes], ObjectRef]
MakeRequest = Callable[..., StepRequest]

CONTEXT = PipelineContext("blur-faces", 1, "run-7", "s0", "resize")


def _delivery(
    request: StepRequest, context: PipelineContext = CONTEXT
) -> tuple[dict[str, str], bytes]:
    event = Event(EventType.STEP_REQUESTED, "/kpipe/router", request.to_data(), context)
    return to_http(event)


def test_handle_http_answers_step_completed(
    runtime: StepRuntime, upload: Upload, make_request: MakeRequest, astronaut_jpeg: bytes
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    headers, body = _delivery(make_request(source, ("resize", {"width": 32})))
    status, reply_headers, reply_body = handle_http(headers, body, "resize", runtime)
    assert status == 200
    event = from_http(reply_headers, reply_body)
    assert event.type is EventType.STEP_COMPLETED
    assert event.source == "/kpipe/functions/resize"
    assert event.context == CONTEXT
    assert event.id == step_event_id(CONTEXT, 1, EventType.STEP_COMPLETED)
    assert event.data["outputs"] == [{"bucket": BUCKET, "key": "runs/r1/out.jpg"}]


def test_bad_image_answers_step_failed(
    runtime: StepRuntime, upload: Upload, make_request: MakeRequest
) -> None:
    source = upload("in/notes.jpg", b"shopping list: milk, eggs")
    headers, body = _delivery(make_request(source, ("resize", {"width": 32})))
    status, reply_headers, reply_body = handle_http(headers, body, "resize", runtime)
    assert status == 200
    event = from_http(reply_headers, reply_body)
    assert event.type is EventType.STEP_FAILED
    assert event.id == step_event_id(CONTEXT, 1, EventType.STEP_FAILED)
    assert event.data["code"] == "bad_image"
    assert "uploads/in/notes.jpg" in event.data["message"]
    assert event.data["retryable"] is False


@pytest.mark.parametrize(
    ("event_type", "function"),
    [(EventType.STEP_COMPLETED, "resize"), (EventType.STEP_REQUESTED, "blur")],
    ids=["wrong-type", "other-function"],
)
def test_events_not_for_us_are_refused(
    runtime: StepRuntime, make_request: MakeRequest, event_type: EventType, function: str
) -> None:
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    event = Event(event_type, "/kpipe/router", request.to_data(), CONTEXT.for_step("s0", function))
    status, headers, body = handle_http(*to_http(event), "resize", runtime)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "malformed_event"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "text/plain"}, b"OK"),
        ({"ce-specversion": "1.0", "ce-type": "io.kpipe.step.requested"}, b"{}"),
        (
            {
                "ce-specversion": "1.0",
                "ce-type": "io.kpipe.step.requested",
                "ce-source": "/x",
                "ce-id": "1",
                "ce-kpiperun": "r",
                "ce-kpipeversion": "1",
                "ce-kpipefunction": "resize",
                "content-type": "application/json",
            },
            b'{"inputs": []}',
        ),
    ],
    ids=["not-an-event", "missing-attributes", "bad-data"],
)
def test_malformed_deliveries_are_refused(
    runtime: StepRuntime, headers: dict[str, str], body: bytes
) -> None:
    status, _, reply_body = handle_http(headers, body, "resize", runtime)
    assert status == 400
    assert json.loads(reply_body)["error"] == "malformed_event"


def test_store_down_asks_for_redelivery(
    free_port: Callable[[], int], make_request: MakeRequest
) -> None:
    settings = ObjectStoreSettings.model_validate({"MINIO_ENDPOINT": f"127.0.0.1:{free_port()}"})
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    with MinioStore(settings, attempts=1, backoff_s=0.01) as down:
        runtime = StepRuntime(store=down, catalog=Catalog(), images=ImageSettings())
        status, _, reply_body = handle_http(*_delivery(request), "resize", runtime)
    assert status == 503
    assert json.loads(reply_body)["error"] == "store_unavailable"


def test_model_not_ready_fails_the_step_in_bounded_time(
    runtime: StepRuntime,
    free_port: Callable[[], int],
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    triton = f"127.0.0.1:{free_port()}"  # no Triton there
    settings = InferenceSettings.model_validate(
        {"TRITON_URL": triton, "TRITON_READY_WAIT_S": 0.3, "TRITON_TIMEOUT_S": 2}
    )
    inference = PerThreadInference(settings)
    runtime = replace(runtime, inference=inference)
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    context = CONTEXT.for_step("s0", "detect_text")
    started = time.monotonic()
    reply = handle_http(
        *_delivery(make_request(source, ("detect_text", {})), context), "detect_text", runtime
    )
    inference.close()
    assert time.monotonic() - started < 10
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert event.data["code"] == "model_not_ready"
    assert event.data["retryable"] is True
    assert triton in event.data["message"]


class _BrokenStore:
    """A store with a bug in it: the step must still answer with an event."""

    def get(self, ref: ObjectRef) -> bytes:
        raise RuntimeError("disk on fire")

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> None:
        raise RuntimeError("disk on fire")

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        raise RuntimeError("disk on fire")


def test_unexpected_errors_answer_step_failed_internal(
    make_request: MakeRequest, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = StepRuntime(store=_BrokenStore(), catalog=Catalog(), images=ImageSettings())
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    reply = handle_http(*_delivery(request), "resize", runtime)
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert event.data == {
        "code": "internal",
        "message": "RuntimeError: disk on fire",
        "retryable": False,
    }
    assert "Traceback" in caplog.text


def test_health_reply() -> None:
    status, headers, body = health_reply("blur")
    assert (status, json.loads(body)) == (200, {"function": "blur", "ready": True})
    assert headers["content-type"] == "application/json"
