"""What a run cost: each step's CPU and Triton time, as its part measured, stored and shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    StepCompleted,
    StepOutput,
    StepRequest,
)
from eventing.http import from_http, to_http
from functions.catalog import Catalog
from tests.router.apps import make_client, signed

SPEC = {
    "name": "faces",
    "trigger": {"bucket": "uploads"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "small", "function": "resize", "params": {"max_side": 64}},
        {"id": "found", "function": "detect_faces", "after": ["small"]},
    ],
}


@pytest.fixture
def client(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    """A router with the two-step pipeline registered."""
    with make_client(tmp_path, catalog) as client:
        client.put("/v1/pipelines/faces", json=SPEC)
        yield client


def _post(client: TestClient, event: Event) -> Event | None:
    headers, body = to_http(signed(event))
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code in (200, 202), response.text
    return from_http(dict(response.headers), response.content) if response.content else None


def _done(request: Event, cpu_ms: float | None, inference_ms: float | None) -> Event:
    req = StepRequest.from_data(request.data)
    done = StepCompleted(StepOutput((req.output,), {}), 40.0, req.attempt, cpu_ms, inference_ms)
    return Event(EventType.STEP_COMPLETED, "/t", done.to_data(), context=request.context)


def test_a_run_shows_what_each_step_and_the_whole_run_cost(client: TestClient) -> None:
    small = _post(client, ObjectCreated("uploads", "a.jpg", 1, "e").to_event("/t"))
    assert small is not None
    found = _post(client, _done(small, 12.5, 0.0))
    assert found is not None
    assert found.context is not None
    _post(client, _done(found, 3.0, 30.25))
    run = client.get(f"/v1/runs/{found.context.run}").json()
    metrics = client.get("/metrics").text
    assert [(s["cpu_ms"], s["inference_ms"]) for s in run["steps"]] == [(12.5, 0.0), (3.0, 30.25)]
    assert (run["cpu_ms"], run["inference_ms"]) == (15.5, 30.25)
    cpu = 'kpipe_step_cpu_seconds_total{function="detect_faces",pipeline="faces"} 0.003'
    assert cpu in metrics
    waited = 'kpipe_step_inference_seconds_total{function="detect_faces",pipeline="faces"} 0.03025'
    assert waited in metrics


def test_a_part_that_does_not_measure_leaves_the_cost_unknown(client: TestClient) -> None:
    small = _post(client, ObjectCreated("uploads", "b.jpg", 1, "e").to_event("/t"))
    assert small is not None
    assert small.context is not None
    _post(client, _done(small, None, None))
    run = client.get(f"/v1/runs/{small.context.run}").json()
    assert run["steps"][0]["cpu_ms"] is None
    assert run["cpu_ms"] is None
