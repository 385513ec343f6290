from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import ValidationError

from eventing.contract import Event, EventType, ObjectCreated, PipelineContext, StepRequest
from eventing.http import from_http, to_http
from functions.catalog import Catalog
from router import events_api, pipelines_api, probes_api, runs_api
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.router.apps import drive, make_client, signed


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


def test_a_pipeline_outside_the_parts_buckets_is_refused(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    # Parts read uploads only from KPIPE_SOURCE_BUCKETS and write only into
    # KPIPE_OUTPUT_BUCKETS (uploads, processed): "back" would read processed
    # and write into uploads, where its outputs would start runs again.
    back = {
        **spec_data,
        "name": "back",
        "trigger": {"bucket": "processed", "prefix": "privacy-blur/"},
        "output": {"bucket": "uploads"},
    }
    checked = client.post("/v1/pipelines/validate", json=back).json()
    response = client.put("/v1/pipelines/back", json=back)

    assert checked["valid"] is False
    assert [p["field"] for p in checked["problems"]] == ["trigger.bucket", "output.bucket"]
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_spec", "trigger.bucket")
    assert "KPIPE_SOURCE_BUCKETS" in error["message"]
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
    return to_http(signed(event))


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
    "event",
    [
        Event(EventType.OBJECT_CREATED, "s", {"bucket": "b"}),
        Event(
            EventType.STEP_COMPLETED,
            "s",
            {"outputs": []},
            PipelineContext("p", 1, "r", function="resize"),
        ),
    ],
    ids=["object-created-without-key", "step-completed-without-step"],
)
def test_signed_events_with_bad_data_get_400(client: TestClient, event: Event) -> None:
    headers, body = to_http(signed(event))
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"


def test_unsigned_events_get_401(client: TestClient) -> None:
    event = ObjectCreated("uploads", "cat.jpg", 10, "etag").to_event("/kpipe/s3/uploads")
    headers, body = to_http(event)
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


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


def test_the_token_guards_reads_and_writes(
    tmp_path: Path, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    ok = {"Authorization": "Bearer s3cret"}
    with make_client(tmp_path, catalog, KPIPE_API_TOKEN="s3cret") as c:
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data, headers=wrong).status_code == 401
        assert c.put("/v1/pipelines/privacy-blur", json=spec_data, headers=ok).status_code == 200
        assert c.get("/v1/pipelines").status_code == 401
        assert c.get("/v1/pipelines/privacy-blur/versions/1").status_code == 401
        assert c.get("/v1/functions").status_code == 401
        assert c.get("/v1/runs").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.delete("/v1/pipelines/privacy-blur").status_code == 401
        lower = {"Authorization": "bearer s3cret"}
        assert [p["name"] for p in c.get("/v1/pipelines", headers=lower).json()] == ["privacy-blur"]
        assert c.get("/healthz").status_code == 200


def test_without_a_token_reads_and_writes_are_open(
    client: TestClient, spec_data: dict[str, Any]
) -> None:
    assert client.put("/v1/pipelines/privacy-blur", json=spec_data).status_code == 200
    assert client.get("/v1/pipelines/privacy-blur").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_an_empty_token_setting_means_no_token(tmp_path: Path) -> None:
    assert RouterSettings(KPIPE_HOME=tmp_path, KPIPE_API_TOKEN="").api_token is None


def test_oversized_bodies_get_413(tmp_path: Path, catalog: Catalog) -> None:
    with make_client(tmp_path, catalog, KPIPE_MAX_BODY_BYTES=100) as c:
        response = c.put("/v1/pipelines/x", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


LIMIT = 1000
CHUNK = b"x" * 100


def _pipeline_x() -> dict[str, Any]:
    return {
        "name": "x",
        "trigger": {"bucket": "uploads", "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": [{"id": "a", "function": "resize", "params": {"width": 8}}],
    }


@pytest.fixture
def limited(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    """A router with small body limits (uploads 3x larger), a token, and pipeline x."""
    with make_client(
        tmp_path,
        catalog,
        KPIPE_MAX_BODY_BYTES=LIMIT,
        KPIPE_MAX_UPLOAD_BYTES=3 * LIMIT,
        KPIPE_API_TOKEN="s3cret",
    ) as c:
        auth = {"Authorization": "Bearer s3cret"}
        assert c.put("/v1/pipelines/x", json=_pipeline_x(), headers=auth).status_code == 200
        yield c


JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=b"
# A multipart body whose file part never ends.
FILE_PART = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)
BODY_ROUTES = [
    ("PUT", "/v1/pipelines/x", JSON, LIMIT),
    ("POST", "/v1/pipelines/validate", JSON, LIMIT),
    ("POST", "/v1/pipelines/x/active", JSON, LIMIT),
    ("POST", "/v1/pipelines/x/backfill", JSON, LIMIT),
    ("POST", "/v1/pipelines/x/uploads", MULTIPART, 3 * LIMIT),
    ("POST", "/events", JSON, LIMIT),
    ("POST", "/dead-letters", JSON, LIMIT),
]


def _endless(content_type: str) -> Iterator[bytes]:
    """A body 100 times any limit here: a reader that does not stop reads it all."""
    if content_type == MULTIPART:
        yield FILE_PART
    yield from itertools.repeat(CHUNK, 300 * LIMIT // len(CHUNK))


def _chunks_past(limit: int, content_type: str) -> int:
    """How many chunks of ``_endless`` it takes to be over ``limit`` bytes."""
    total = 0
    for count, chunk in enumerate(_endless(content_type), start=1):
        total += len(chunk)
        if total > limit:
            return count
    raise AssertionError(f"the body is not over {limit} bytes")


@pytest.mark.parametrize(("method", "path", "content_type", "limit"), BODY_ROUTES)
def test_an_endless_body_is_read_only_up_to_the_limit(
    limited: TestClient, method: str, path: str, content_type: str, limit: int
) -> None:
    headers = {"content-type": content_type, "authorization": "Bearer s3cret"}
    driven = drive(limited.app, method, path, _endless(content_type), headers)
    assert driven == (413, _chunks_past(limit, content_type))


@pytest.mark.parametrize(("method", "path", "content_type", "limit"), BODY_ROUTES)
def test_a_body_declared_too_large_is_not_read(
    limited: TestClient, method: str, path: str, content_type: str, limit: int
) -> None:
    headers = {
        "content-type": content_type,
        "content-length": str(limit + 1),
        "authorization": "Bearer s3cret",
    }
    driven = drive(limited.app, method, path, _endless(content_type), headers)
    assert driven == (413, 0)


def test_an_upload_to_an_unknown_pipeline_is_refused_before_its_body_is_read(
    limited: TestClient,
) -> None:
    headers = {"content-type": MULTIPART, "authorization": "Bearer s3cret"}
    driven = drive(limited.app, "POST", "/v1/pipelines/nope/uploads", _endless(MULTIPART), headers)
    assert driven == (404, 0)


@pytest.mark.parametrize(
    ("method", "path", "content_type", "limit"),
    [route for route in BODY_ROUTES if route[1] not in ("/events", "/dead-letters")],
)
def test_no_body_is_read_before_the_token_is_checked(
    limited: TestClient, method: str, path: str, content_type: str, limit: int
) -> None:
    headers = {"content-type": content_type, "authorization": "Bearer wrong"}
    driven = drive(limited.app, method, path, _endless(content_type), headers)
    assert driven == (401, 0)


ROUTERS = [
    events_api.router,
    probes_api.open_probes,
    probes_api.guarded_probes,
    pipelines_api.router,
    runs_api.router,
]


def test_fastapi_parses_no_request_body_itself(client: TestClient) -> None:
    """Every body goes through the bounded reader, after the token check."""
    routes = [route for router in ROUTERS for route in router.routes]
    parsed_by_fastapi = [
        route.path for route in routes if isinstance(route, APIRoute) and route.body_field
    ]
    assert parsed_by_fastapi == []
    # and those routers are all the app serves
    documented = set(client.get("/openapi.json").json()["paths"])
    assert documented == {re.sub(r":\w+}", "}", getattr(route, "path", "")) for route in routes}


@pytest.mark.parametrize(
    ("body", "field"),
    [(b'{"version": "two"}', "version"), (b"{}", "version"), (b"[1", None)],
)
def test_a_bad_active_version_body_is_422_naming_the_field(
    client: TestClient, spec_data: dict[str, Any], body: bytes, field: str | None
) -> None:
    client.put("/v1/pipelines/privacy-blur", json=spec_data)
    response = client.post("/v1/pipelines/privacy-blur/active", content=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def _documented(client: TestClient) -> set[str]:
    return set(client.get("/openapi.json").json()["paths"])


PROBES = {"/healthz", "/metrics"}
EVENTS = {"/events", "/dead-letters"}


@pytest.mark.parametrize("serves", ["all", "api", "events"])
def test_kpipe_router_serves_picks_the_endpoints(
    tmp_path: Path, catalog: Catalog, client: TestClient, serves: str
) -> None:
    v1 = {path for path in _documented(client) if path.startswith("/v1/")}
    assert len(v1) > 10
    expected = {"all": PROBES | EVENTS | v1, "api": PROBES | v1, "events": PROBES | EVENTS}
    with make_client(tmp_path, catalog, KPIPE_ROUTER_SERVES=serves) as c:
        assert _documented(c) == expected[serves]
        assert c.get("/healthz").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert c.get("/docs").status_code == 200
        page = [c.get("/").status_code, c.get("/static/app.js").status_code]
    assert page == ([404, 404] if serves == "events" else [200, 200])


@pytest.mark.parametrize(
    ("serves", "method", "path"),
    [
        ("api", "POST", "/events"),
        ("api", "POST", "/dead-letters"),
        ("events", "GET", "/v1/pipelines"),
        ("events", "PUT", "/v1/pipelines/x"),
        ("events", "GET", "/v1/objects/uploads/a.jpg"),
        ("events", "GET", "/"),
        ("events", "GET", "/static/app.js"),
    ],
)
def test_what_a_role_does_not_serve_is_404(
    tmp_path: Path, catalog: Catalog, serves: str, method: str, path: str
) -> None:
    headers, body = _object_created()
    with make_client(tmp_path, catalog, KPIPE_ROUTER_SERVES=serves) as c:
        response = c.request(method, path, headers=headers, content=body)
    assert response.status_code == 404


def test_an_unknown_role_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="KPIPE_ROUTER_SERVES"):
        RouterSettings(KPIPE_HOME=tmp_path, KPIPE_ROUTER_SERVES="both")


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
    # the request went back as the answer, kept for a redelivery; nothing waits
    assert 'kpipe_outbox_events{state="replies"} 1.0' in text
    assert 'kpipe_outbox_events{state="waiting"} 0.0' in text
