"""Pin, retry, backfill, uploads and objects, against a real S3 server and a real sink."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from fastapi.testclient import TestClient

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    StepFailed,
    StepRequest,
    step_event_id,
)
from eventing.http import from_http, to_http
from eventing.objectstore import MinioStore
from eventing.sink import Backoff, HttpBrokerClient
from functions.catalog import Catalog
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3.server import S3Server
from tests.conftest import wait_until
from tests.eventing.conftest import Subscriber
from tests.router.apps import make_client, signed

pytestmark = pytest.mark.slow


@pytest.fixture
def sink(subscriber: Callable[..., Subscriber]) -> Subscriber:
    return subscriber((202, b"", {}))


@pytest.fixture
def client(
    tmp_path: Path, catalog: Catalog, s3: S3Server, sink: Subscriber
) -> Iterator[TestClient]:
    with make_client(
        tmp_path,
        catalog,
        sink=HttpBrokerClient(sink.url, timeout_s=5, retries=1, backoff=Backoff(0.01)),
        objects=MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint)),
    ) as c:
        yield c


def spec(prefix: str, suffix: str = ".jpg") -> dict[str, Any]:
    return {
        "name": "privacy-blur",
        "trigger": {"bucket": "uploads", "prefix": prefix, "suffix": suffix},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "small", "function": "resize", "params": {"max_side": 64}},
            {"id": "faces", "function": "detect_faces", "after": ["small"]},
        ],
    }


def sent(sink: Subscriber) -> list[Event]:
    return [from_http(r.headers, r.body) for r in sink.received]


def test_upload_then_read_back(client: TestClient, prefix: str, astronaut_jpeg: bytes) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    response = client.post(
        "/v1/pipelines/privacy-blur/uploads",
        files={"file": ("../../sneaky photo.jpg", astronaut_jpeg, "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"] == f"{prefix}sneaky photo.jpg"
    assert body["etag"]
    got = client.get(f"/v1/objects/uploads/{prefix}sneaky photo.jpg")
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/jpeg"
    assert got.content == astronaut_jpeg


def test_a_large_upload_is_streamed_to_the_store_byte_for_byte(
    client: TestClient, prefix: str
) -> None:
    # 12 MiB: past the first 5 MiB part, so the store gets a multipart upload
    # read from the spooled form file a part at a time.
    data = os.urandom(12 * 1024 * 1024)
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    response = client.post(
        "/v1/pipelines/privacy-blur/uploads", files={"file": ("big.jpg", data, "image/jpeg")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["etag"].endswith("-3")  # three parts
    got = client.get(f"/v1/objects/uploads/{prefix}big.jpg")
    assert got.content == data


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "status"),
    [(MIB - 1024, 201), (MIB, 413)],
    ids=["under-the-limit", "over-the-limit"],
)
def test_the_upload_limit_counts_the_body_and_nothing_over_it_is_stored(
    tmp_path: Path, catalog: Catalog, s3: S3Server, prefix: str, size: int, status: int
) -> None:
    # KPIPE_MAX_UPLOAD_BYTES bounds the whole form: a file of the limit's
    # size, with the form's headers around it, is over it.
    data = os.urandom(size)
    with (
        MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint)) as store,
        make_client(tmp_path, catalog, objects=store, KPIPE_MAX_UPLOAD_BYTES=MIB) as c,
    ):
        c.put("/v1/pipelines/privacy-blur", json=spec(prefix))
        response = c.post(
            "/v1/pipelines/privacy-blur/uploads", files={"file": ("a.jpg", data, "image/jpeg")}
        )
        stored = [o.key for o in store.list("uploads", prefix)]
    assert response.status_code == status, response.text
    if status == 413:
        assert response.json()["error"]["code"] == "body_too_large"
        assert stored == []
    else:
        assert stored == [f"{prefix}a.jpg"]


class _HeldStore(MinioStore):
    """The real store, whose streamed puts wait until the test lets them go on."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        super().__init__(settings)
        self.putting = threading.Event()
        self.go_on = threading.Event()

    def put_stream(self, ref: ObjectRef, stream: BinaryIO, length: int, content_type: str) -> str:
        self.putting.set()
        self.go_on.wait(10)
        return super().put_stream(ref, stream, length, content_type)


def test_an_upload_being_stored_does_not_hold_up_other_requests(
    tmp_path: Path, catalog: Catalog, s3: S3Server, prefix: str
) -> None:
    # The store's put blocks; were it run on the event loop, nothing else
    # (the broker's ingress, deliveries, a health check) would be answered.
    data = os.urandom(2 * MIB)
    store = _HeldStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint))
    with (
        store,
        make_client(tmp_path, catalog, objects=store) as c,
        ThreadPoolExecutor(2) as pool,
    ):
        c.put("/v1/pipelines/privacy-blur", json=spec(prefix))
        uploading = pool.submit(
            c.post,
            "/v1/pipelines/privacy-blur/uploads",
            files={"file": ("held.jpg", data, "image/jpeg")},
        )
        assert store.putting.wait(10)
        health = pool.submit(c.get, "/healthz")
        answered, _ = wait([health], timeout=5)
        store.go_on.set()
        assert health in answered, "a health check waited for an upload's put"
        assert health.result().status_code == 200
        assert uploading.result(timeout=10).status_code == 201
        assert c.get(f"/v1/objects/uploads/{prefix}held.jpg").content == data


def test_upload_refuses_names_the_trigger_would_ignore(client: TestClient, prefix: str) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    response = client.post(
        "/v1/pipelines/privacy-blur/uploads", files={"file": ("notes.txt", b"hi", "text/plain")}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "file"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/objects/secrets/a.jpg", "object_not_found"),
        ("/v1/objects/uploads/nope.jpg", "object_missing"),
    ],
)
def test_objects_outside_pipelines_or_missing_are_404(
    client: TestClient, prefix: str, path: str, code: str
) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == code


def test_pin_and_roll_back(client: TestClient, prefix: str) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix, ".png"))
    pinned = client.post("/v1/pipelines/privacy-blur/active", json={"version": 1})
    assert pinned.status_code == 200
    assert pinned.json()["version"] == 1
    assert client.get("/v1/pipelines/privacy-blur").json()["spec"]["trigger"]["suffix"] == ".jpg"
    missing = client.post("/v1/pipelines/privacy-blur/active", json={"version": 9})
    assert missing.status_code == 404


def _start_run(client: TestClient, prefix: str) -> Event:
    obj = ObjectCreated("uploads", f"{prefix}a.jpg", 10, "etag-a", "image/jpeg")
    headers, body = to_http(signed(obj.to_event("/test")))
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 200
    return from_http(dict(response.headers), response.content)


def fail_step(client: TestClient, request: Event) -> int:
    """Deliver the part's ``step.failed`` answer to ``request``; the router's status."""
    failed = Event(
        EventType.STEP_FAILED,
        "/test",
        StepFailed("bad_image", "broken", attempt=request.data["attempt"]).to_data(),
        context=request.context,
    )
    headers, body = to_http(signed(failed))
    return int(client.post("/events", headers=headers, content=body).status_code)


def test_retry_restarts_a_failed_run_from_the_failed_step(
    client: TestClient, prefix: str, sink: Subscriber
) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    request = _start_run(client, prefix)
    assert request.context is not None
    assert fail_step(client, request) == 200
    run_id = request.context.run
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "failed"
    retried = client.post(f"/v1/runs/{run_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "running"
    assert retried.json()["error"] is None
    [again] = sent(sink)
    assert again.context is not None
    assert again.context.step == "small"
    assert StepRequest.from_data(again.data).attempt == 2
    assert again.id == step_event_id(request.context, 2, EventType.STEP_REQUESTED) != request.id
    conflict = client.post(f"/v1/runs/{run_id}/retry")
    assert conflict.status_code == 409
    lineage = client.get(f"/v1/runs/{run_id}").json()["lineage"]
    assert lineage[0] == {
        "step": "source",
        "function": None,
        "status": "stored",
        "objects": [{"bucket": "uploads", "key": f"{prefix}a.jpg"}],
    }
    assert [hop["step"] for hop in lineage] == ["source", "small", "faces"]


def test_backfill_starts_runs_no_faster_than_its_concurrency(
    client: TestClient, prefix: str, sink: Subscriber, s3: S3Server
) -> None:
    store = MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint))
    for name in ("a.jpg", "b.jpg", "c.jpg", "skip.png"):
        store.put(ObjectRef("uploads", prefix + name), b"x", "image/jpeg")
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    started = client.post("/v1/pipelines/privacy-blur/backfill", json={"concurrency": 2})
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["total"], job["bucket"], job["prefix"]) == (3, "uploads", prefix)
    wait_until(lambda: sink.count == 2)
    time.sleep(0.5)
    assert sink.count == 2  # the third waits for a slot
    first = sent(sink)[0]
    assert first.context is not None
    assert fail_step(client, first) == 200
    wait_until(lambda: sink.count >= 3)
    progress = client.get(f"/v1/backfills/{job['id']}").json()
    assert progress["started"] == 3
    assert progress["failed"] == 1


def test_an_original_is_private_when_a_token_is_set(
    tmp_path: Path, catalog: Catalog, s3: S3Server, prefix: str, astronaut_jpeg: bytes
) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    store = MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint))
    store.put(ObjectRef("uploads", f"{prefix}face.jpg"), astronaut_jpeg, "image/jpeg")
    url = f"/v1/objects/uploads/{prefix}face.jpg"
    with make_client(tmp_path, catalog, objects=store, KPIPE_API_TOKEN="s3cret") as c:
        put = c.put("/v1/pipelines/privacy-blur", json=spec(prefix), headers=auth)
        assert put.status_code == 200, put.text

        anonymous = c.get(url)
        wrong = c.get(url, headers={"Authorization": "Bearer s3cre"})
        allowed = c.get(url, headers=auth)

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert astronaut_jpeg[:64] not in anonymous.content + wrong.content
    assert allowed.status_code == 200
    assert allowed.content == astronaut_jpeg


@pytest.mark.parametrize("name", ["page.html", "drawing.svg", "notes"])
def test_an_uploaded_document_is_served_as_a_sandboxed_download(
    client: TestClient, s3: S3Server, prefix: str, name: str
) -> None:
    # Served inline from the router's origin, an HTML or SVG upload could run
    # script next to the page's API token.
    client.put("/v1/pipelines/privacy-blur", json=spec(prefix))
    html = b"<script>fetch('/v1/runs')</script>"
    MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint)).put(
        ObjectRef("uploads", f"{prefix}{name}"), html, "text/html"
    )
    got = client.get(f"/v1/objects/uploads/{prefix}{name}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == "attachment"
    assert "sandbox" in got.headers["content-security-policy"]
