"""A part's handle_http: which deliveries get which reply, and who may ask for work."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio

from eventing.contract import (
    Event,
    EventType,
    ObjectRef,
    PipelineContext,
    StepRequest,
    step_event_id,
)
from eventing.http import from_http, to_http
from eventing.objectstore import MinioStore
from eventing.signing import SigningKey
from functions.catalog import Catalog
from functions.delivery import handle_http, health_reply
from functions.runtime import PerThreadInference, StepRuntime
from kpipe.core.settings import (
    DeliverySettings,
    ImageSettings,
    InferenceSettings,
    ObjectStoreSettings,
)
from tests.conftest import BUCKET, OUTPUT_BUCKET
from tests.functions.conftest import CONTEXT, PARTS_KEY, ROUTER_KEY, TRUSTED

Upload = Callable[[str, bytes], ObjectRef]
MakeRequest = Callable[..., StepRequest]

# Older than KPIPE_RETRY_FOR_S (180 s by default): no more redeliveries.
LONG_AGO = timedelta(minutes=10)


def _delivery(
    request: StepRequest,
    context: PipelineContext = CONTEXT,
    age: timedelta = timedelta(0),
    key: SigningKey | None = ROUTER_KEY,
) -> tuple[dict[str, str], bytes]:
    event = Event(
        EventType.STEP_REQUESTED,
        "/kpipe/router",
        request.to_data(),
        context,
        time=datetime.now(UTC) - age,
    )
    return to_http(key.sign(event) if key is not None else event)


def _runtime(store: object) -> StepRuntime:
    return StepRuntime(
        store=store,  # type: ignore[arg-type]
        catalog=Catalog(),
        images=ImageSettings(),
        trusted=TRUSTED,
        signer=PARTS_KEY,
    )


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
    assert event.data["outputs"] == [{"bucket": OUTPUT_BUCKET, "key": "p/_runs/r1/out.jpg"}]
    assert event.data["attempt"] == 1
    # Signed with the parts' key: the router accepts it from no one else.
    TRUSTED.verify(event)
    assert event.key_id == PARTS_KEY.key_id


@pytest.mark.parametrize("age", [timedelta(0), LONG_AGO], ids=["young", "old"])
def test_bad_image_answers_step_failed(
    runtime: StepRuntime, upload: Upload, make_request: MakeRequest, age: timedelta
) -> None:
    source = upload("in/notes.jpg", b"shopping list: milk, eggs")
    headers, body = _delivery(make_request(source, ("resize", {"width": 32})), age=age)
    status, reply_headers, reply_body = handle_http(headers, body, "resize", runtime)
    assert status == 200
    event = from_http(reply_headers, reply_body)
    assert event.type is EventType.STEP_FAILED
    assert event.id == step_event_id(CONTEXT, 1, EventType.STEP_FAILED)
    assert event.data["code"] == "bad_image"
    assert event.data["message"].startswith("uploads/in/notes.jpg is not a usable image")
    assert "KPIPE_RETRY_FOR_S" not in event.data["message"]
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
    status, headers, body = handle_http(*to_http(ROUTER_KEY.sign(event)), "resize", runtime)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "malformed_event"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "text/plain"}, b"OK"),
        ({"ce-specversion": "1.0", "ce-type": "io.kpipe.step.requested"}, b"{}"),
    ],
    ids=["not-an-event", "missing-attributes"],
)
def test_malformed_deliveries_are_refused(
    runtime: StepRuntime, headers: dict[str, str], body: bytes
) -> None:
    status, _, reply_body = handle_http(headers, body, "resize", runtime)
    assert status == 400
    assert json.loads(reply_body)["error"]["code"] == "malformed_event"


@pytest.mark.parametrize(
    "data", [{"inputs": []}, {"inputs": [{"bucket": "uploads"}]}, {"calls": "resize"}]
)
def test_signed_requests_with_bad_data_are_refused(
    runtime: StepRuntime, data: dict[str, object]
) -> None:
    event = Event(EventType.STEP_REQUESTED, "/kpipe/router", data, CONTEXT)
    status, _, reply_body = handle_http(*to_http(ROUTER_KEY.sign(event)), "resize", runtime)
    assert status == 400
    assert json.loads(reply_body)["error"]["code"] == "malformed_event"


@pytest.fixture
def store_down(free_port: Callable[[], int]) -> Iterator[MinioStore]:
    """A store whose endpoint nobody listens on."""
    settings = ObjectStoreSettings.model_validate({"MINIO_ENDPOINT": f"127.0.0.1:{free_port()}"})
    with MinioStore(settings, attempts=1, backoff_s=0.01) as down:
        yield down


@pytest.fixture
def triton_down(free_port: Callable[[], int]) -> Iterator[tuple[str, PerThreadInference]]:
    """An inference factory for a Triton that is not there, and its URL."""
    url = f"127.0.0.1:{free_port()}"
    inference = PerThreadInference(InferenceSettings.model_validate({"TRITON_URL": url}))
    yield url, inference
    inference.close()


def test_store_down_asks_for_redelivery(store_down: MinioStore, make_request: MakeRequest) -> None:
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    runtime = _runtime(store_down)
    status, headers, reply_body = handle_http(*_delivery(request), "resize", runtime)
    assert (status, headers["content-type"]) == (503, "application/json")
    reason = json.loads(reply_body)["error"]
    assert reason["code"] == "store_unavailable"
    assert store_down.endpoint in reason["message"]
    assert (reason["retryable"], reason["retry_for_s"]) == (True, 180.0)


def test_store_down_too_long_fails_the_step_naming_the_store(
    store_down: MinioStore, make_request: MakeRequest
) -> None:
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    runtime = _runtime(store_down)
    reply = handle_http(*_delivery(request, age=LONG_AGO), "resize", runtime)
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert event.data["code"] == "store_unavailable"
    assert event.data["retryable"] is False
    assert store_down.endpoint in event.data["message"]
    assert "KPIPE_RETRY_FOR_S=180" in event.data["message"]


def _detect_text(
    upload: Upload, make_request: MakeRequest, jpeg: bytes, age: timedelta
) -> tuple[dict[str, str], bytes]:
    """A detect_text delivery sent ``age`` ago, on the astronaut photo."""
    source = upload("in/astronaut.jpg", jpeg)
    context = CONTEXT.for_step("s0", "detect_text")
    return _delivery(make_request(source, ("detect_text", {})), context, age)


def test_triton_down_asks_for_redelivery_naming_model_and_url(
    runtime: StepRuntime,
    triton_down: tuple[str, PerThreadInference],
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    url, inference = triton_down
    runtime = replace(runtime, inference=inference)
    delivery = _detect_text(upload, make_request, astronaut_jpeg, timedelta(seconds=5))
    status, _, reply_body = handle_http(*delivery, "detect_text", runtime)
    assert status == 503
    reason = json.loads(reply_body)["error"]
    assert reason["code"] == "model_not_ready"
    assert f"model text_detection not ready on Triton at {url}" in reason["message"]
    assert reason["retryable"] is True
    assert 5.0 <= reason["age_s"] < reason["retry_for_s"]


def test_triton_down_too_long_fails_the_step_naming_model_and_url(
    runtime: StepRuntime,
    triton_down: tuple[str, PerThreadInference],
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    url, inference = triton_down
    runtime = replace(runtime, inference=inference)
    delivery = _detect_text(upload, make_request, astronaut_jpeg, LONG_AGO)
    reply = handle_http(*delivery, "detect_text", runtime)
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert event.data["code"] == "model_not_ready"
    assert event.data["retryable"] is False
    message = event.data["message"]
    assert f"model text_detection not ready on Triton at {url}: unreachable" in message
    assert "still failing 600 s after the request was sent" in message


def test_retry_for_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    runtime: StepRuntime,
    triton_down: tuple[str, PerThreadInference],
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    monkeypatch.setenv("KPIPE_RETRY_FOR_S", "2")
    url, inference = triton_down
    runtime = replace(runtime, inference=inference, delivery=DeliverySettings())
    delivery = _detect_text(upload, make_request, astronaut_jpeg, timedelta(seconds=5))
    reply = handle_http(*delivery, "detect_text", runtime)
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert url in event.data["message"]
    assert "KPIPE_RETRY_FOR_S=2" in event.data["message"]


class _BrokenStore:
    """A store with a bug in it: the step must still answer with an event."""

    def get(self, ref: ObjectRef, if_match: str | None = None) -> bytes:
        raise RuntimeError("disk on fire")

    def etag(self, ref: ObjectRef) -> str:
        raise RuntimeError("disk on fire")

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> None:
        raise RuntimeError("disk on fire")

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        raise RuntimeError("disk on fire")


def test_unexpected_errors_answer_step_failed_internal(
    make_request: MakeRequest, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _runtime(_BrokenStore())
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    reply = handle_http(*_delivery(request), "resize", runtime)
    event = from_http(reply.headers, reply.body)
    assert (reply.status, event.type) == (200, EventType.STEP_FAILED)
    assert event.data == {
        "code": "internal",
        "message": "RuntimeError: disk on fire",
        "retryable": False,
        "attempt": 1,
    }
    assert "Traceback" in caplog.text


def test_health_reply() -> None:
    status, headers, body = health_reply("blur")
    assert (status, json.loads(body)) == (200, {"function": "blur", "ready": True})
    assert headers["content-type"] == "application/json"


class _CountingStore:
    """Records every call: a refused request must not touch the object store."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get(self, ref: ObjectRef, if_match: str | None = None) -> bytes:
        self.calls.append(f"get {ref}")
        raise RuntimeError("must not be read")

    def etag(self, ref: ObjectRef) -> str:
        self.calls.append(f"etag {ref}")
        return ""

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> str:
        self.calls.append(f"put {ref}")
        return ""

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        self.calls.append(f"copy {src} {dst}")


@pytest.mark.parametrize(
    "key",
    [None, PARTS_KEY, SigningKey.generate(ROUTER_KEY.key_id)],
    ids=["unsigned", "signed-by-a-part", "router-key-id-other-key"],
)
def test_a_request_not_signed_by_the_router_is_refused_and_does_nothing(
    make_request: MakeRequest, key: SigningKey | None
) -> None:
    store = _CountingStore()
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    status, _, body = handle_http(*_delivery(request, key=key), "resize", _runtime(store))
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthenticated"
    assert store.calls == []


def test_a_tampered_request_is_refused(make_request: MakeRequest) -> None:
    store = _CountingStore()
    request = make_request(ObjectRef(BUCKET, "in/x.jpg"), ("resize", {"width": 9}))
    headers, body = _delivery(request)
    tampered = body.replace(b"in/x.jpg", b"in/y.jpg")
    status, _, _ = handle_http(headers, tampered, "resize", _runtime(store))
    assert status == 401
    assert store.calls == []


@pytest.mark.parametrize(
    ("inputs", "output", "final"),
    [
        # Another run's intermediate, or any other object, as an input.
        ((ObjectRef(OUTPUT_BUCKET, "p/_runs/other-run/s0/x.jpg"),), "p/_runs/r1/out.jpg", False),
        ((ObjectRef("secrets", "keys.jpg"),), "p/_runs/r1/out.jpg", False),
        # Writing outside the run, or outside the pipeline when final.
        ((), "uploads-copy.jpg", False),
        ((), "p/final.jpg", False),
        ((), "other-pipeline/x.jpg", True),
        ((), "p/_runs/r1/../../../x.jpg", False),
        # Keys that a part's extension change would move out of the run (issue 17).
        ((), "p/", True),
        ((), "p/_runs/r1/", False),
        # A final output among the runs' intermediates.
        ((), "p/_runs/r2/x.jpg", True),
    ],
    ids=[
        "other-runs-intermediate",
        "unrelated-object",
        "output-outside-the-pipeline",
        "intermediate-outside-the-run",
        "final-outside-the-pipeline",
        "dot-dot",
        "the-pipeline-prefix-itself",
        "the-run-prefix-itself",
        "final-into-another-run",
    ],
)
def test_a_signed_request_outside_its_run_is_refused_and_does_nothing(
    make_request: MakeRequest, inputs: tuple[ObjectRef, ...], output: str, final: bool
) -> None:
    store = _CountingStore()
    source = ObjectRef(BUCKET, "in/x.jpg")
    request = replace(
        make_request(source, ("resize", {"width": 9}), output_key=output, final=final),
        inputs=inputs or (source,),
    )
    status, _, body = handle_http(*_delivery(request), "resize", _runtime(store))
    assert status == 403
    assert json.loads(body)["error"]["code"] == "out_of_scope"
    assert store.calls == []


def test_a_replayed_request_does_the_same_work_again_and_changes_nothing(
    runtime: StepRuntime, upload: Upload, make_request: MakeRequest, astronaut_jpeg: bytes
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    delivery = _delivery(make_request(source, ("resize", {"width": 32})))
    first = handle_http(*delivery, "resize", runtime)
    again = handle_http(*delivery, "resize", runtime)
    one, two = from_http(first.headers, first.body), from_http(again.headers, again.body)
    # The same output key, the same answer id and attempt: the router drops the second.
    assert one.id == two.id
    assert one.data["outputs"] == two.data["outputs"]
    assert one.data["attempt"] == two.data["attempt"] == 1
    stored = runtime.store.get(ObjectRef(OUTPUT_BUCKET, "p/_runs/r1/out.jpg"))
    assert stored.startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    "bucket", ["uploads", "secrets"], ids=["the-trigger-bucket", "a-foreign-bucket"]
)
def test_a_signed_request_writing_outside_the_output_buckets_is_refused(
    make_request: MakeRequest, bucket: str
) -> None:
    store = _CountingStore()
    source = ObjectRef(BUCKET, "in/x.jpg")
    request = make_request(source, ("resize", {"width": 9}))
    request = replace(request, output=ObjectRef(bucket, request.output.key))
    status, _, body = handle_http(*_delivery(request), "resize", _runtime(store))
    assert status == 403
    assert json.loads(body)["error"]["code"] == "out_of_scope"
    assert store.calls == []


@pytest.mark.parametrize(
    ("output", "final"),
    [("p/_runs/r1/.", False), ("p/.", True)],
    ids=["becomes-p/_runs/r1.jpg", "becomes-p.jpg"],
)
def test_the_key_really_written_is_checked_after_its_extension_changed(
    runtime: StepRuntime,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
    raw_s3: Minio,
    output: str,
    final: bool,
) -> None:
    # The requested key looks inside the run; the key the part would write
    # once it sets the extension is not: the last check refuses it.
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    request = make_request(source, ("resize", {"width": 9}), output_key=output, final=final)
    status, _, body = handle_http(*_delivery(request), "resize", runtime)
    assert status == 403
    assert json.loads(body)["error"]["code"] == "out_of_scope"
    assert list(raw_s3.list_objects(OUTPUT_BUCKET, recursive=True)) == []
