"""Redrive: retry every failed run a filter matches, from its failed step, at a bounded pace.

After a Triton outage a pipeline has many runs failed ``model_not_ready``; one
call counts them (``dry_run``) and one more brings them back, never more than
``concurrency`` unfinished at a time, as a tracked job like a backfill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
)
from eventing.http import from_http, to_http
from eventing.sink import Backoff, HttpBrokerClient
from functions.catalog import Catalog
from tests.conftest import wait_until
from tests.eventing.conftest import Subscriber
from tests.router.apps import make_client, signed

SPEC: dict[str, Any] = {
    "name": "thumbs",
    "trigger": {"bucket": "uploads", "prefix": "in/"},
    "output": {"bucket": "processed"},
    "steps": [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
}


@pytest.fixture
def sink(subscriber: Callable[..., Subscriber]) -> Subscriber:
    return subscriber((202, b"", {}))


@pytest.fixture
def client(tmp_path: Path, catalog: Catalog, sink: Subscriber) -> Iterator[TestClient]:
    broker = HttpBrokerClient(sink.url, timeout_s=5, retries=1, backoff=Backoff(0.01))
    with make_client(tmp_path, catalog, sink=broker) as c:
        c.put("/v1/pipelines/thumbs", json=SPEC)
        yield c


def _post(client: TestClient, event: Event) -> Event | None:
    headers, body = to_http(signed(event))
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code in (200, 202), response.text
    return from_http(dict(response.headers), response.content) if response.content else None


def _failed_run(client: TestClient, name: str, code: str) -> str:
    """A run of ``in/<name>`` whose step failed with ``code``; its id."""
    obj = ObjectCreated("uploads", f"in/{name}", 10, f"etag-{name}", "image/jpeg")
    request = _post(client, obj.to_event("/test"))
    assert request is not None
    assert request.context is not None
    attempt = StepRequest.from_data(request.data).attempt
    failure = StepFailed(code, "Triton is not serving the model", attempt=attempt)
    _post(client, Event(EventType.STEP_FAILED, "/t", failure.to_data(), context=request.context))
    return request.context.run


def _requests(sink: Subscriber) -> list[Event]:
    events = [from_http(r.headers, r.body) for r in sink.received]
    return [e for e in events if e.type is EventType.STEP_REQUESTED]


def _complete(client: TestClient, request: Event) -> None:
    req = StepRequest.from_data(request.data)
    done = StepCompleted(StepOutput((req.output,), {}), 1.0, req.attempt)
    _post(client, Event(EventType.STEP_COMPLETED, "/t", done.to_data(), context=request.context))


def test_a_dry_run_counts_and_changes_nothing(client: TestClient, sink: Subscriber) -> None:
    outage = [_failed_run(client, f"{i}.jpg", "model_not_ready") for i in range(3)]
    _failed_run(client, "broken.jpg", "bad_image")
    body = {"pipeline": "thumbs", "error_code": "model_not_ready", "dry_run": True}
    counted = client.post("/v1/runs/redrive", json=body)
    assert counted.status_code == 200, counted.text
    assert counted.json()["matched"] == 3
    assert sorted(counted.json()["runs"]) == sorted(outage)
    assert counted.json()["jobs"] == []
    assert _requests(sink) == []
    assert client.get("/v1/runs", params={"status": "failed"}).json()["total"] == 4
    # the dead letters and other failures are listed by their code the same way
    listed = client.get("/v1/runs", params={"error_code": "bad_image"}).json()
    assert [run["error"]["code"] for run in listed["runs"]] == ["bad_image"]


def test_a_redrive_retries_the_matched_runs_at_its_concurrency(
    client: TestClient, sink: Subscriber
) -> None:
    outage = {_failed_run(client, f"{i}.jpg", "model_not_ready") for i in range(3)}
    broken = _failed_run(client, "broken.jpg", "bad_image")
    body = {"pipeline": "thumbs", "error_code": "model_not_ready", "concurrency": 2}
    started = client.post("/v1/runs/redrive", json=body)
    assert started.status_code == 200, started.text
    [job] = started.json()["jobs"]
    assert (job["kind"], job["total"]) == ("redrive", 3)
    wait_until(lambda: len(_requests(sink)) == 2)
    # two at a time: the third waits for one of them to finish
    wait_until(lambda: client.get(f"/v1/backfills/{job['id']}").json()["started"] == 2)
    first = _requests(sink)[0]
    assert StepRequest.from_data(first.data).attempt == 2  # retried from the failed step
    _complete(client, first)
    wait_until(lambda: len(_requests(sink)) == 3)
    for request in _requests(sink)[1:]:
        _complete(client, request)
    wait_until(lambda: client.get(f"/v1/backfills/{job['id']}").json()["status"] == "done")
    progress = client.get(f"/v1/backfills/{job['id']}").json()
    assert (progress["succeeded"], progress["failed"]) == (3, 0)
    for run_id in outage:
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
    assert client.get(f"/v1/runs/{broken}").json()["status"] == "failed"  # not matched


def test_a_redrive_of_a_pipeline_never_registered_is_a_404(client: TestClient) -> None:
    answer = client.post("/v1/runs/redrive", json={"pipeline": "nope"})
    assert answer.status_code == 404
    bad = client.post("/v1/runs/redrive", json={"pipeline": "thumbs", "concurrency": 0})
    assert bad.status_code == 422
