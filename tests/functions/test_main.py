"""functions/main.py as functions-framework serves it: its ASGI app in-process, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from minio import Minio
from starlette.testclient import TestClient

from eventing.contract import Event, EventType, ObjectRef, StepCall, StepRequest, run_prefix
from eventing.http import from_http, to_http
from functions.catalog import default_catalog
from tests.conftest import BUCKET, OUTPUT_BUCKET
from tests.functions.apps import MAIN, part_client, wait_for_health
from tests.functions.conftest import CONTEXT, PARTS_KEY, PIPELINE, ROUTER_KEY, RUN

OUT = run_prefix(PIPELINE, RUN)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> str:
    """The env vars a deployed function gets, pointing at the test S3 server."""
    monkeypatch.setenv("MINIO_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "test")
    monkeypatch.setenv("MINIO_SECRET_KEY", "test")
    monkeypatch.setenv("MINIO_TIMEOUT_S", "5")
    return s3_endpoint


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parts' signing key and the router's public key, as `kpipe up` gives them."""
    monkeypatch.setenv("KPIPE_SIGNING_KEY", PARTS_KEY.entry())
    monkeypatch.setenv("KPIPE_TRUSTED_KEYS", f"router={ROUTER_KEY.public_entry()}")


def _app(target: str) -> TestClient:
    return part_client(target)


def _delivery(
    function: str, source: ObjectRef, params: dict[str, object]
) -> tuple[dict[str, str], bytes]:
    request = StepRequest(
        source=source,
        inputs=(source,),
        calls=(StepCall("s1", function, params),),
        output=ObjectRef(OUTPUT_BUCKET, f"{OUT}{Path(source.key).name}"),
    )
    context = CONTEXT.for_step("s1", function)
    event = Event(EventType.STEP_REQUESTED, "/kpipe/router", request.to_data(), context)
    return to_http(ROUTER_KEY.sign(event))


@pytest.mark.parametrize(
    ("target", "params", "expected_key"),
    [
        ("resize", {"max_side": 100}, f"{OUT}astronaut.jpg"),
        ("blur_faces", {"model": "haar"}, f"{OUT}astronaut.jpg"),
        ("convert", {"format": "webp"}, f"{OUT}astronaut.webp"),
    ],
)
def test_step_requested_gets_a_completed_cloudevent(
    env: str,
    raw_s3: Minio,
    upload: Callable[[str, bytes], ObjectRef],
    astronaut_jpeg: bytes,
    target: str,
    params: dict[str, object],
    expected_key: str,
) -> None:
    source = upload("photos/astronaut.jpg", astronaut_jpeg)
    etag = raw_s3.stat_object(BUCKET, source.key).etag
    headers, body = _delivery(target, source, params)
    reply = _app(target).post("/", headers=headers, content=body)
    assert reply.status_code == 200
    assert reply.headers["ce-type"] == "io.kpipe.step.completed"
    assert reply.headers["ce-source"] == f"/kpipe/functions/{target}"
    assert reply.content != b"OK"
    event = from_http(dict(reply.headers), reply.content)
    assert event.data["outputs"] == [{"bucket": OUTPUT_BUCKET, "key": expected_key}]
    assert raw_s3.stat_object(OUTPUT_BUCKET, expected_key).size > 0
    # The upload is never modified.
    assert raw_s3.stat_object(BUCKET, source.key).etag == etag
    assert raw_s3.get_object(BUCKET, source.key).read() == astronaut_jpeg


def test_malformed_event_gets_400(env: str) -> None:
    reply = _app("resize").post(
        "/", headers={"content-type": "application/json"}, content=b'{"hello": "world"}'
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "malformed_event"
    assert "ce-type" not in reply.headers


@pytest.mark.parametrize("target", default_catalog().names())
def test_get_is_a_health_check(target: str) -> None:
    reply = _app(target).get("/")
    assert reply.status_code == 200
    assert reply.json() == {"function": target, "ready": True}


def test_other_methods_are_refused() -> None:
    reply = _app("blur").delete("/")
    assert reply.status_code == 405
    assert reply.json()["error"]["code"] == "method_not_allowed"


def test_bad_configuration_is_a_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIO_TIMEOUT_S", "soon")
    source = ObjectRef(BUCKET, "photos/cat.jpg")
    headers, body = _delivery("resize", source, {"width": 10})
    reply = _app("resize").post("/", headers=headers, content=body)
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "misconfigured"
    assert "soon" not in reply.text  # the caller is not authenticated: details go to the log


def test_a_misconfigured_part_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPIPE_TRUSTED_KEYS")
    reply = _app("resize").get("/")
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "misconfigured"


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--asgi"], []], ids=["asgi", "flask-front"])
def test_functions_framework_cli_serves_a_target(
    free_port: Callable[[], int], flags: list[str]
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        MAIN,
        "--target",
        "detect_faces",
        *flags,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    process = subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for_health(port, process) == {"function": "detect_faces", "ready": True}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_metrics_count_steps_by_outcome(
    env: str, upload: Callable[[str, bytes], ObjectRef], astronaut_jpeg: bytes
) -> None:
    app = _app("resize")
    source = upload("photos/metrics.jpg", astronaut_jpeg)
    good = _delivery("resize", source, {"max_side": 64})
    bad = _delivery("resize", ObjectRef(BUCKET, "photos/missing.jpg"), {"max_side": 64})
    for headers, body in (good, bad):
        assert app.post("/", headers=headers, content=body).status_code == 200
    metrics = app.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'kpipe_events_in_total{function="resize"} 2.0' in text
    assert 'kpipe_events_out_total{function="resize",type="io.kpipe.step.completed"} 1.0' in text
    assert 'kpipe_step_failures_total{code="object_missing",function="resize"} 1.0' in text
    assert 'kpipe_step_duration_seconds_count{function="resize"} 2.0' in text
    assert 'kpipe_steps_in_flight{function="resize"} 0.0' in text
