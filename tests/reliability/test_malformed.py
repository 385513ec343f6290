"""Malformed requests at every receiver: 4xx with a JSON error, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import TestClient as StarletteClient

from eventing.adapter import create_adapter_app
from eventing.contract import Event
from eventing.signing import Role
from functions.catalog import Catalog
from kpipe.local.broker import BrokerConfig, create_broker_app
from tests.reliability._apps import PART_ENV, TARGETS, part_client, router_client
from tests.router.apps import KEYS

BASE = {
    "ce-specversion": "1.0",
    "ce-id": "1",
    "ce-source": "/test",
    "ce-type": "io.kpipe.step.completed",
    "content-type": "application/json",
}
RUN = {"ce-kpiperun": "r1", "ce-kpipeversion": "1", "ce-kpipepipeline": "p", "ce-kpipestep": "s"}


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in BASE.items() if k != name}


# Not a CloudEvent at all, or one that breaks the CloudEvents rules: every receiver says 400.
NOT_CLOUDEVENTS: dict[str, tuple[dict[str, str], bytes]] = {
    "missing-id": (_without("ce-id"), b"{}"),
    "missing-source": (_without("ce-source"), b"{}"),
    "missing-type": (_without("ce-type"), b"{}"),
    "missing-specversion": (_without("ce-specversion"), b"{}"),
    "specversion-0.3": ({**BASE, "ce-specversion": "0.3"}, b"{}"),
    "specversion-2.0": ({**BASE, "ce-specversion": "2.0"}, b"{}"),
    "data-not-json": (BASE, b"{not json"),
    "data-not-utf8": (BASE, b"\xff\xfe\x00{"),
    "structured-not-json": ({"content-type": "application/cloudevents+json"}, b"[1, 2"),
    "structured-missing-attributes": (
        {"content-type": "application/cloudevents+json"},
        b'{"specversion": "1.0"}',
    ),
    "structured-not-an-object": ({"content-type": "application/cloudevents+json"}, b'"x"'),
    "plain-text": ({"content-type": "text/plain"}, b"OK"),
    "empty": ({}, b""),
}

# Valid CloudEvents that are not kpipe events: the router and the parts say 400.
NOT_KPIPE_EVENTS: dict[str, tuple[dict[str, str], bytes]] = {
    "unknown-type": ({**BASE, **RUN, "ce-type": "com.example.other"}, b"{}"),
    "data-is-a-list": ({**BASE, **RUN}, b"[1, 2]"),
    "data-is-a-string": ({**BASE, **RUN}, b'"hello"'),
    "data-is-null": ({**BASE, **RUN}, b"null"),
    "version-not-a-number": ({**BASE, **RUN, "ce-kpipeversion": "one"}, b"{}"),
    "bad-time": ({**BASE, **RUN, "ce-time": "yesterday"}, b"{}"),
    "no-run-attributes": (BASE, b'{"outputs": []}'),
    "wrong-data-fields": ({**BASE, **RUN}, b'{"outputs": "nope", "inputs": 3}'),
}


# A malformed event is refused as such (400); one that parses but is not
# signed, before anything reads its data (401).
REFUSED = {(400, "malformed_event"), (401, "unauthenticated")}


def _for(headers: dict[str, str], ce_type: str) -> dict[str, str]:
    """The same case addressed to a receiver that consumes ``ce_type``."""
    if headers.get("ce-type", "").startswith("io.kpipe."):
        return {**headers, "ce-type": ce_type}
    return headers


@pytest.fixture
def router(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    with router_client(tmp_path, catalog) as client:
        yield client


@pytest.fixture(scope="module")
def broker() -> Iterator[StarletteClient]:
    with StarletteClient(create_broker_app(BrokerConfig())) as client:
        yield client


@pytest.fixture(scope="module", params=TARGETS)
def part(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in PART_ENV.items():
            env.setenv(name, value)
        yield part_client(request.param)


def _error_code(body: bytes) -> str:
    data: Any = json.loads(body)
    return str(data["error"]["code"])


@pytest.mark.parametrize("case", sorted(NOT_CLOUDEVENTS))
def test_broker_ingress_refuses_malformed_cloudevents(broker: StarletteClient, case: str) -> None:
    headers, body = NOT_CLOUDEVENTS[case]
    response = broker.post("/default/default", headers=headers, content=body)
    assert response.status_code == 400, response.text
    assert _error_code(response.content) == "malformed_event"


@pytest.mark.parametrize("case", sorted(NOT_CLOUDEVENTS | NOT_KPIPE_EVENTS))
def test_router_refuses_malformed_cloudevents(router: TestClient, case: str) -> None:
    headers, body = (NOT_CLOUDEVENTS | NOT_KPIPE_EVENTS)[case]
    response = router.post(
        "/events", headers=_for(headers, "io.kpipe.step.completed"), content=body
    )
    # Unsigned as well as malformed: refused either way, never routed.
    assert (response.status_code, _error_code(response.content)) in REFUSED, response.text


@pytest.mark.parametrize("case", sorted(NOT_CLOUDEVENTS | NOT_KPIPE_EVENTS))
def test_every_part_refuses_malformed_cloudevents(part: TestClient, case: str) -> None:
    headers, body = (NOT_CLOUDEVENTS | NOT_KPIPE_EVENTS)[case]
    reply = part.post("/", headers=_for(headers, "io.kpipe.step.requested"), content=body)
    assert (reply.status_code, _error_code(reply.content)) in REFUSED, reply.text
    assert "ce-type" not in reply.headers  # no event, so the broker does not route a reply


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


MALFORMED_NOTIFICATIONS: dict[str, bytes] = {
    "not-json": b"{Records: [",
    "not-utf8": b"\xff\xfe",
    "a-list": b"[]",
    "no-records": b'{"EventName": "s3:ObjectCreated:Put"}',
    "records-not-a-list": b'{"Records": {"eventName": "s3:ObjectCreated:Put"}}',
    "record-not-an-object": b'{"Records": ["s3:ObjectCreated:Put"]}',
    "record-without-name": b'{"Records": [{"s3": {}}]}',
    "created-without-bucket": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
        b' "s3": {"object": {"key": "a.jpg", "size": 1}}}]}'
    ),
    "created-without-key": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
        b' "s3": {"bucket": {"name": "b"}, "object": {"size": 1}}}]}'
    ),
    "size-is-text": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
        b' "s3": {"bucket": {"name": "b"}, "object": {"key": "a.jpg", "size": "1"}}}]}'
    ),
    "negative-size": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
        b' "s3": {"bucket": {"name": "b"}, "object": {"key": "a.jpg", "size": -1}}}]}'
    ),
    "empty-key": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
        b' "s3": {"bucket": {"name": "b"}, "object": {"key": "", "size": 1}}}]}'
    ),
    "etag-is-a-number": (
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "b"},'
        b' "object": {"key": "a.jpg", "size": 1, "eTag": 5}}}]}'
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_NOTIFICATIONS))
def test_adapter_refuses_malformed_webhook_bodies(case: str) -> None:
    sink = _Sink()
    with StarletteClient(create_adapter_app(sink, KEYS[Role.ADAPTER], "tok")) as client:
        response = client.post(
            "/",
            content=MALFORMED_NOTIFICATIONS[case],
            headers={"authorization": "Bearer tok", "content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_notification"
    assert sink.events == []


LIMIT = 1000


def _chunks(size: int) -> Iterator[bytes]:
    """A body sent without a content-length (chunked), so only the bytes read count."""
    for _ in range(size // 100 + 1):
        yield b"x" * 100


@pytest.fixture(params=["router-events", "router-put", "router-validate", "adapter", "broker"])
def small_server(
    request: pytest.FixtureRequest, tmp_path: Path, catalog: Catalog
) -> Iterator[tuple[StarletteClient, str]]:
    """A receiver with a body limit of ``LIMIT`` bytes, and the path to post to."""
    name: str = request.param
    if name.startswith("router"):
        path = {"events": "/events", "put": "/v1/pipelines/x", "validate": "/v1/pipelines/validate"}
        with router_client(tmp_path, catalog, KPIPE_MAX_BODY_BYTES=LIMIT) as client:
            yield client, path[name.removeprefix("router-")]
    elif name == "adapter":
        with StarletteClient(
            create_adapter_app(_Sink(), KEYS[Role.ADAPTER], max_body=LIMIT)
        ) as client:
            yield client, "/"
    else:
        app = create_broker_app(BrokerConfig(), max_event_bytes=LIMIT)
        with StarletteClient(app) as client:
            yield client, "/default/default"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_oversized_bodies_get_413(
    small_server: tuple[StarletteClient, str], declared: bool
) -> None:
    client, path = small_server
    headers = {**BASE, "ce-type": "io.kpipe.object.created"}
    body: Any = b"x" * (LIMIT + 1) if declared else _chunks(LIMIT + 1)
    method = client.put if path == "/v1/pipelines/x" else client.post
    response = method(path, headers=headers, content=body)
    assert response.status_code == 413, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/pipelines/nope"),
        ("DELETE", "/v1/pipelines/nope"),
        ("GET", "/v1/pipelines/nope/versions"),
        ("GET", "/v1/pipelines/nope/versions/1"),
        ("GET", "/v1/pipelines/known/versions/2"),
        ("POST", "/v1/pipelines/nope/active"),
        ("POST", "/v1/pipelines/known/active"),
        ("POST", "/v1/pipelines/nope/backfill"),
        ("GET", "/v1/runs/nope"),
        ("POST", "/v1/runs/nope/retry"),
        ("GET", "/v1/backfills/nope"),
    ],
)
def test_unknown_pipelines_versions_and_runs_get_404(
    router: TestClient, spec_data: dict[str, Any], method: str, path: str
) -> None:
    assert router.put("/v1/pipelines/known", json={**spec_data, "name": "known"}).status_code == 200
    body = {"version": 7} if path.endswith("/active") else {}
    response = router.request(method, path, json=body)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] in (
        "pipeline_not_found",
        "run_not_found",
        "backfill_not_found",
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/pipelines/known/active", {"version": 2**63}, 404),
        ("GET", f"/v1/pipelines/known/versions/{2**63}", None, 404),
        ("GET", f"/v1/runs?version={2**63}", None, 200),
        ("GET", f"/v1/runs?offset={2**64}", None, 200),
    ],
    ids=["active", "version", "runs-version", "runs-offset"],
)
def test_integers_beyond_sql_are_not_a_500(
    router: TestClient,
    spec_data: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, int] | None,
    status: int,
) -> None:
    """Found by schemathesis: a version of 2**63 overflowed SQLite's INTEGER."""
    assert router.put("/v1/pipelines/known", json={**spec_data, "name": "known"}).status_code == 200
    response = router.request(method, path, json=body)
    assert response.status_code == status, response.text
