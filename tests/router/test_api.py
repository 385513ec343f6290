from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from eventing.contract import EventType, ObjectCreated, StepRequest
from eventing.http import from_http, to_http
from functions.catalog import Catalog
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.router.apps import make_client


@pytest.fixture
def client(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    with make_client(tmp_path, catalog) as c:
        yield c


def test_put_get_list_delete(client: TestClient, spec_data: dict[str, Any]) -> None:
    put = client.put("/v1/pipelines/privacy-blur", json=spec_data)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    assert client.get("/v1/pipelines/privacy-blur").json()["spec"]["steps"][0]["id"] == "small"
    assert [p["name"] for p in client.get("/v1/pipelines").json()] == ["privacy-blur"]
    assert client.delete("/v1/pipelines/privacy-blur").status_code == 204
    assert client.get("/v1/pipelines").json() == []
    missing = client.get("/v1/pipelines/privacy-blur")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "pipeline_not_found"


def test_put_accepts_yaml(client: TestClient, spec_data: dict[str, Any]) -> None:
    response = client.put(
        "/v1/pipelines/privacy-blur",
        content=yaml.safe_dump(spec_data),
        headers={"content-type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    assert client.put("/v1/pipelines/privacy-blur", json=spec_data).json()["version"] == 2
    versions = client.get("/v1/pipelines/privacy-blur/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get("/v1/pipelines/privacy-blur/versions/1").json()["version"] == 1


def test_put_fills_in_the_name_from_the_url(client: TestClient, spec_data: dict[str, Any]) -> None:
    del spec_data["name"]
    assert client.put("/v1/pipelines/from-url", json=spec_data).json()["name"] == "from-url"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "other"}, "name"),
        ({"steps": [{"id": "a", "function": "nope"}]}, "steps[0].function"),
        (
            {"steps": [{"id": "a", "function": "resize", "params": {"max_side": 0}}]},
            "steps[0].params.max_side",
        ),
    ],
)
def test_invalid_specs_get_422_naming_the_field(
    client: TestClient, spec_data: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = client.put("/v1/pipelines/privacy-blur", json={**spec_data, **body})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["field"] == field


@pytest.mark.parametrize("body", [b"name: [", b"\x00\xff", b"- 1\n- 2\n"])
def test_unparseable_bodies_get_422_not_500(client: TestClient, body: bytes) -> None:
    response = client.put("/v1/pipelines/x", content=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "$"


def test_validate_lists_every_problem_and_saves_nothing(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    spec_data["steps"][0]["function"] = "nope"
    spec_data["steps"][2]["after"] = ["ghost"]
    response = client.post("/v1/pipelines/validate", content=json.dumps(spec_data))
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert {p["field"] for p in body["problems"]} == {"steps[0].function", "steps[2].after[0]"}
    assert client.get("/v1/pipelines").json() == []


def test_a_pipeline_that_would_loop_through_another_is_refused(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    # privacy-blur writes processed/privacy-blur/...; "back" reads it and writes to uploads
    back = {
        **spec_data,
        "name": "back",
        "trigger": {"bucket": "processed", "prefix": "privacy-blur/"},
        "output": {"bucket": "uploads"},
    }
    assert client.put("/v1/pipelines/privacy-blur", json=spec_data).status_code == 200

    checked = client.post("/v1/pipelines/validate", json=back).json()
    response = client.put("/v1/pipelines/back", json=back)

    assert checked["valid"] is False
    assert [p["field"] for p in checked["problems"]] == ["output.bucket"]
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_spec", "output.bucket")
    assert "back -> privacy-blur -> back" in error["message"]
    assert client.get("/v1/pipelines/back").status_code == 404


def test_functions_catalogue(client: TestClient) -> None:
    parts = {p["name"]: p for p in client.get("/v1/functions").json()}
    assert {
        "resize",
        "convert",
        "detect_faces",
        "detect_text",
        "detect_objects",
        "blur",
        "blur_faces",
        "annotate",
    } <= set(parts)
    resize = parts["resize"]
    assert resize["group"] == "pre-processing"
    assert resize["params"]["type"] == "object"
    assert resize["params"]["properties"]["max_side"]["anyOf"][0]["maximum"] == 16384
    assert parts["detect_faces"]["group"] == "ai"
    assert parts["detect_faces"]["labels"] == ["face"]
    assert parts["blur"]["group"] == "post-processing"


def _object_created(key: str = "cat.jpg") -> tuple[dict[str, str], bytes]:
    event = ObjectCreated("uploads", key, 10, "etag", "image/jpeg").to_event("/kpipe/s3/uploads")
    return to_http(event)


def test_events_endpoint_answers_with_the_next_event(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec_data)
    headers, body = _object_created()
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 200
    reply = from_http(dict(response.headers), response.content)
    assert reply.type is EventType.STEP_REQUESTED
    assert StepRequest.from_data(reply.data).inputs[0].key == "cat.jpg"
    runs = client.get("/v1/runs", params={"pipeline": "privacy-blur"}).json()
    assert runs["total"] == 1
    run = client.get(f"/v1/runs/{runs['runs'][0]['id']}").json()
    assert run["status"] == "pending"
    assert [s["id"] for s in run["steps"]] == ["small", "faces", "blur"]
    assert run["steps"][0]["status"] == "requested"
    by_source = client.get("/v1/runs", params={"source": "uploads/cat.jpg"}).json()
    assert by_source["total"] == 1


def test_events_with_no_follow_up_get_an_empty_202(client: TestClient) -> None:
    headers, body = _object_created()
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 202
    assert response.content == b""


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b"OK"),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "io.kpipe.object.created",
                "content-type": "application/json",
            },
            b"{not json",
        ),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "io.kpipe.object.created",
                "content-type": "application/json",
            },
            b'{"bucket": "b"}',
        ),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "io.kpipe.step.completed",
                "content-type": "application/json",
            },
            b'{"outputs": []}',
        ),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "com.example.other",
                "content-type": "application/json",
            },
            b"{}",
        ),
    ],
)
def test_malformed_events_get_400(client: TestClient, headers: dict[str, str], body: bytes) -> None:
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sideways"}, "status"),
        ({"source": "no-slash"}, "source"),
        ({"limit": "0"}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_run_queries_get_4xx(client: TestClient, params: dict[str, str], field: str) -> None:
    response = client.get("/v1/runs", params=params)
    assert response.status_code in (400, 422)
    assert response.json()["error"]["field"] == field


def test_unknown_run_is_404(client: TestClient) -> None:
    response = client.get("/v1/runs/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "run_not_found"


def test_healthz_names_the_component_that_is_not_ready(tmp_path: Path, catalog: Catalog) -> None:
    config = RouterSettings(KPIPE_HOME=tmp_path)
    store = Store(config.database())

    def broker_down() -> None:
        raise ConnectionError("connection refused")

    services = RouterServices(
        settings=config,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping, "broker": broker_down}),
    )
    with TestClient(create_app(services)) as c:
        response = c.get("/healthz")
    assert response.status_code == 503
    assert response.json()["component"] == "broker"


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["components"] == {"database": "ready"}


def test_token_guards_mutations_only(
    tmp_path: Path, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    with make_client(tmp_path, catalog, KPIPE_API_TOKEN="s3cret") as c:
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data, headers=wrong).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data, headers=ok).status_code == 200
        assert c.get("/v1/pipelines").status_code == 200
        assert c.delete("/v1/pipelines/privacy-blur").status_code == 401


def test_oversized_bodies_get_413(tmp_path: Path, catalog: Catalog) -> None:
    with make_client(tmp_path, catalog, KPIPE_MAX_BODY_BYTES=100) as c:
        response = c.put("/v1/pipelines/x", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_metrics_count_events_runs_and_queue_depth(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec_data)
    headers, body = _object_created("metrics.jpg")
    assert client.post("/events", headers=headers, content=body).status_code == 200
    text = client.get("/metrics").text
    assert 'kpipe_events_in_total{type="io.kpipe.object.created"} 1.0' in text
    assert 'kpipe_events_out_total{type="io.kpipe.step.requested"} 1.0' in text
    assert 'kpipe_runs{status="pending"} 1.0' in text
    assert "kpipe_queue_depth 1.0" in text
