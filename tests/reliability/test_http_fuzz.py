"""Any body, under any content type, at every receiver: never a 500.

Every operation of the router's REST API (from its own OpenAPI document, the
broker's ``/events`` and ``/dead-letters`` included) gets JSON, YAML, near-specs,
multipart uploads and arbitrary bytes, with its path parameters drawn too; the
broker's ingress, the notification adapter and a part get arbitrary headers and
bodies. Events signed with a key every receiver trusts reach the code behind the
signature check, and well-formed uploads reach the object store. All in process,
with a real S3 server behind the router and the part; the broker and the adapter
are reached only through their app factories.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient as StarletteClient

from eventing.adapter import create_adapter_app
from eventing.contract import Event, EventType, PipelineContext
from eventing.http import to_http
from eventing.objectstore import MinioStore
from eventing.signing import Role, SigningKey, TrustedKeys, part_principal
from functions.catalog import Catalog, default_catalog
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.broker import BrokerConfig, create_broker_app
from kpipe.local.config import PARTS
from kpipe.local.s3.server import S3Server
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.reliability._apps import part_client, router_services
from tests.reliability._strategies import cel_texts, json_values, payload_fields, specs

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
content_types = (
    st.sampled_from(
        [
            "application/json",
            "application/yaml",
            "text/yaml",
            "text/plain",
            "application/octet-stream",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=kpipe",
            "multipart/form-data; boundary=",
            "application/cloudevents+json",
            "application/json; charset=latin-1",
            "",
        ]
    )
    | printable
)


def _valid_spec() -> dict[str, Any]:
    return {
        "name": "p",
        "trigger": {"bucket": "uploads", "prefix": "in/"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "a", "function": "resize", "params": {"width": 8}},
            {"id": "b", "function": "detect_faces", "after": ["a"]},
            {"id": "c", "function": "blur", "after": ["b"], "when": "b.count > 0"},
        ],
    }


def _with_condition(text: str) -> dict[str, Any]:
    spec = _valid_spec()
    spec["steps"][2]["when"] = text
    return spec


def _multipart(filename: str, data: bytes, boundary: str = "kpipe") -> bytes:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
    return head.encode() + b"\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode()


documents = (
    specs
    | json_values
    | st.builds(_with_condition, cel_texts)
    | st.fixed_dictionaries(
        {}, optional={k: json_values for k in ("version", "bucket", "prefix", "concurrency")}
    )
)
bodies = (
    documents.map(lambda d: json.dumps(d).encode())
    | documents.map(lambda d: yaml.safe_dump(d).encode())
    | st.binary(max_size=300)
    | st.builds(_multipart, printable, st.binary(max_size=50))
    | st.just(b"")
)
path_values = (
    st.just("p")
    | st.sampled_from(
        [
            "p",
            "privacy-blur",
            "1",
            "0",
            "-1",
            str(2**63),
            "%2e%2e",
            "a%2Fb",
            "..",
            "uploads",
            "x" * 300,
        ]
    )
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12).map(
        lambda s: quote(s, safe="")
    )
)
ce_headers = st.fixed_dictionaries(
    {},
    optional={
        "ce-specversion": st.sampled_from(["1.0", "0.3"]) | printable,
        "ce-id": printable,
        "ce-source": printable,
        "ce-type": st.sampled_from([t.value for t in EventType]) | printable,
        "ce-kpiperun": printable,
        "ce-kpipeversion": st.sampled_from(["1", "x"]) | printable,
        "ce-kpipestep": printable,
        "ce-kpipepipeline": printable,
        "authorization": st.sampled_from(["Bearer tok", "Bearer nope"]) | printable,
    },
)


# Every role signs with this one key, and every receiver trusts it for every role, so
# that fuzzed events get past the signature check to the code behind it.
KEY = SigningKey.generate("fuzz")
# One key trusted as every principal: the fuzzer's events get past the signature check.
PRINCIPALS = (Role.ROUTER, Role.ADAPTER, *map(part_principal, PARTS))
TRUSTED = TrustedKeys.of({principal: [KEY] for principal in PRINCIPALS})


def _signed(kind: EventType, data: dict[str, Any], function: str) -> tuple[dict[str, str], bytes]:
    context = PipelineContext("p", 1, "r1", "a", function)
    return to_http(KEY.sign(Event(kind, "/fuzz", data, context=context)))


event_data = st.fixed_dictionaries({}, optional=payload_fields) | st.fixed_dictionaries(
    payload_fields
)
signed_events = st.builds(
    _signed,
    st.sampled_from(list(EventType)),
    event_data,
    st.sampled_from(["resize", "blur", "nope"]),
)


uploads = st.builds(
    lambda filename, data: (
        {"content-type": "multipart/form-data; boundary=kpipe"},
        _multipart(filename, data),
    ),
    st.sampled_from(["a.jpg", "../x.png", "", ".", "a/b.jpg", "é.jpg"]) | printable,
    st.binary(max_size=50),
)
# Whole requests that are well formed on the outside: signed events, multipart uploads.
whole_requests = signed_events | uploads


def _call(client: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    status = int(client.request(method, path, content=body, headers=headers).status_code)
    event(f"status {status}")  # --hypothesis-show-statistics shows what was reached
    return status


# -- the router ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router(s3: S3Server, catalog: Catalog) -> Iterator[TestClient]:
    settings = RouterSettings(KPIPE_HOME=Path(tempfile.mkdtemp(prefix="kpipe-http-fuzz-")))
    store = Store(settings.database())
    services = RouterServices(
        settings=settings,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping}),
        objects=MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint)),
        trusted=TRUSTED,
        signer=KEY,
    )
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        # One registered pipeline, so that routes about it get past the lookup.
        assert client.put("/v1/pipelines/p", json=_valid_spec()).status_code == 200
        yield client


def _operations() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as home:
        paths = create_app(router_services(Path(home), default_catalog())).openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


OPERATIONS = _operations()


def test_every_api_operation_is_fuzzed() -> None:
    assert ("PUT", "/v1/pipelines/{name}") in OPERATIONS
    assert ("POST", "/events") in OPERATIONS
    assert len(OPERATIONS) >= 20


@pytest.mark.parametrize(
    ("method", "template"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS]
)
@FUZZ
@given(
    draw=st.data(),
    body=bodies,
    content_type=content_types,
    headers=ce_headers,
    whole=st.none() | whole_requests,
    query=st.dictionaries(
        st.sampled_from(
            ["pipeline", "version", "status", "source", "since", "error_code", "limit", "offset"]
        ),
        printable,
        max_size=3,
    ),
)
def test_no_api_operation_answers_500(
    router: TestClient,
    method: str,
    template: str,
    draw: st.DataObject,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    whole: tuple[dict[str, str], bytes] | None,
    query: dict[str, str],
) -> None:
    if router.get("/v1/pipelines/p").status_code == 404:  # an earlier DELETE drew "p"
        assert router.put("/v1/pipelines/p", json=_valid_spec()).status_code == 200
    path = template
    for name in ("name", "version", "backfill_id", "run_id", "bucket", "key"):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", draw.draw(path_values, label=name))
    headers = {**headers, "content-type": content_type} if content_type else headers
    if whole is not None:
        headers, body = whole
    response = router.request(method, path, content=body, headers=headers, params=query)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (method, path, response.text[:300])


# -- the broker, the adapter and a part, through their app factories -----------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[StarletteClient]:
    with StarletteClient(create_broker_app(BrokerConfig()), raise_server_exceptions=False) as c:
        yield c


@FUZZ
@given(
    path=st.just("/default/default") | st.sampled_from(["/", "/default", "/a/b/c"]),
    method=st.just("POST") | st.sampled_from(["GET", "PUT"]),
    body=bodies,
    content_type=content_types,
    headers=ce_headers,
)
def test_the_broker_ingress_never_answers_500(
    broker: StarletteClient,
    path: str,
    method: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
) -> None:
    status = _call(broker, method, path, body, {**headers, "content-type": content_type})
    assert status < 500


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def adapter() -> Iterator[StarletteClient]:
    app = create_adapter_app(_Sink(), signer=KEY, auth_token="tok")
    with StarletteClient(app, raise_server_exceptions=False) as c:
        yield c


@FUZZ
@given(
    path=st.sampled_from(["/", "/healthz", "/x"]),
    method=st.sampled_from(["POST", "GET"]),
    body=bodies,
    content_type=content_types,
    headers=ce_headers,
)
def test_the_adapter_never_answers_500(
    adapter: StarletteClient,
    path: str,
    method: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
) -> None:
    status = _call(adapter, method, path, body, {**headers, "content-type": content_type})
    assert status < 500


@pytest.fixture(scope="module")
def part(s3: S3Server) -> Iterator[TestClient]:
    # A part reads its keys and its object store from the environment on its first request.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KPIPE_SIGNING_KEY", KEY.entry())
        env.setenv("KPIPE_TRUSTED_KEYS", ",".join(KEY.trusted_entry(p) for p in PRINCIPALS))
        env.setenv("MINIO_ENDPOINT", s3.endpoint)
        yield part_client("resize")


@FUZZ
@given(
    method=st.just("POST") | st.sampled_from(["GET", "PUT"]),
    body=bodies,
    content_type=content_types,
    headers=ce_headers,
    signed=st.none() | signed_events,
)
def test_a_part_never_answers_500(
    part: TestClient,
    method: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    signed: tuple[dict[str, str], bytes] | None,
) -> None:
    headers = {**headers, "content-type": content_type}
    if signed is not None:
        headers, body = signed
    reply = part.request(method, "/", content=body, headers=headers)
    event(f"status {reply.status_code}")
    assert reply.status_code < 500, reply.content[:300]
