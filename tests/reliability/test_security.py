"""Security: tokens, constant-time compares, no SSRF, no secrets in logs, CORS, non-root."""

from __future__ import annotations

import hmac
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.testclient import TestClient as StarletteClient

from eventing.adapter import create_adapter_app
from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    PipelineContext,
    StepCall,
    StepRequest,
)
from eventing.http import to_http
from eventing.objectstore import MinioStore
from eventing.signing import SIGNER, Role, SigningKey, part_principal
from eventing.sink import HttpBrokerClient
from functions.catalog import Catalog
from kpipe.core.retry import Backoff
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.config import StackConfig
from router.settings import RouterSettings
from tests.e2e.conftest import REPO, Stack
from tests.eventing.conftest import Subscriber
from tests.reliability._apps import router_client
from tests.reliability._images import noise_jpeg
from tests.reliability._stack import broker_url, counters, one_step, wait_counters
from tests.router.apps import KEYS, make_client, signed

TOKEN = "tok-3f9a1c7e-never-log-me"
SECRET = "sec-8d2b4e6f-never-log-me"
ADAPTER_KEY = SigningKey.generate("security-test-adapter")


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def guarded(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    with router_client(tmp_path, catalog, KPIPE_API_TOKEN=TOKEN) as client:
        yield client


MUTATIONS = [
    ("PUT", "/v1/pipelines/{name}"),
    ("DELETE", "/v1/pipelines/{name}"),
    ("POST", "/v1/pipelines/{name}/active"),
    ("POST", "/v1/pipelines/{name}/backfill"),
    ("POST", "/v1/pipelines/{name}/uploads"),
    ("POST", "/v1/runs/{run_id}/retry"),
    ("POST", "/v1/runs/redrive"),
    ("POST", "/v1/pipelines/{name}/rollout"),
    ("POST", "/v1/pipelines/{name}/rollout/end"),
]

# With a token set, reading needs it too: originals are private, and so are
# the runs, specs and part list that describe them, and the metrics that name
# pipelines (validate is a read: it names the registered pipelines a spec
# would loop through).
READS = [
    ("GET", "/v1/pipelines"),
    ("GET", "/v1/pipelines/{name}"),
    ("GET", "/v1/pipelines/{name}/versions"),
    ("GET", "/v1/pipelines/{name}/versions/{version}"),
    ("POST", "/v1/pipelines/validate"),
    ("GET", "/v1/functions"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run_id}"),
    ("GET", "/v1/backfills/{backfill_id}"),
    ("GET", "/v1/pipelines/{name}/rollout"),
    ("GET", "/v1/pipelines/{name}/rollout/compare"),
    ("GET", "/v1/objects/{bucket}/{key}"),
    ("GET", "/metrics"),
]
GUARDED = MUTATIONS + READS

# Open without a token: the probes' /healthz, and the broker's deliveries
# (authenticated by their signatures, not by the API token). The page's
# static files and the OpenAPI docs are open too (no data in them); they are
# not in the OpenAPI document, and test_what_stays_open covers them.
OPEN = {("GET", "/healthz"), ("POST", "/events"), ("POST", "/dead-letters")}


def _url(path: str) -> str:
    return path.format(
        name="p", run_id="r", version="1", backfill_id="b", bucket="uploads", key="s/a.jpg"
    )


def _operations(client: TestClient) -> set[tuple[str, str]]:
    openapi = client.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch")
    }


def test_the_list_of_mutations_is_every_mutating_route(guarded: TestClient) -> None:
    found = {(method, path) for method, path in _operations(guarded) if method != "GET"}
    # validate saves nothing; /events and /dead-letters are the broker's, inside the cluster
    readonly = {
        ("POST", "/v1/pipelines/validate"),
        ("POST", "/events"),
        ("POST", "/dead-letters"),
    }
    assert found - readonly == set(MUTATIONS)


def test_every_route_but_the_open_ones_needs_the_token(guarded: TestClient) -> None:
    assert _operations(guarded) - OPEN == set(GUARDED)


# (Authorization header, status, RFC 6750 error in WWW-Authenticate, error code in the body)
REFUSED = {
    "none": (None, 401, None, "unauthorized"),
    "empty": ("", 401, None, "unauthorized"),
    "basic": (f"Basic {TOKEN}", 401, None, "unauthorized"),
    "bare-token": (TOKEN, 401, None, "unauthorized"),
    "bare-prefix": (TOKEN[:-1], 401, None, "unauthorized"),
    "tab": (f"Bearer\t{TOKEN}", 401, None, "unauthorized"),
    "wrong": ("Bearer wrong", 401, "invalid_token", "invalid_token"),
    "prefix": (f"Bearer {TOKEN[:-1]}", 401, "invalid_token", "invalid_token"),
    "longer": (f"Bearer {TOKEN}x", 401, "invalid_token", "invalid_token"),
    "other-case": (f"Bearer {TOKEN.upper()}", 401, "invalid_token", "invalid_token"),
    "no-token": ("Bearer", 400, "invalid_request", "malformed_authorization"),
    "two-tokens": (f"Bearer wrong {TOKEN}", 400, "invalid_request", "malformed_authorization"),
    "split-token": (
        f"Bearer {TOKEN[:5]} {TOKEN[5:]}",
        400,
        "invalid_request",
        "malformed_authorization",
    ),
}


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_guarded_routes_refuse_a_missing_wrong_or_malformed_token(
    guarded: TestClient, method: str, path: str, case: str
) -> None:
    header, status, error, code = REFUSED[case]
    headers = {"authorization": header} if header is not None else {}
    response = guarded.request(method, _url(path), headers=headers, json={})
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="kpipe"')
    if error is None:  # RFC 6750 3.1: no error details when no bearer token was sent
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge
    assert response.json()["error"]["code"] == code
    assert TOKEN not in response.text
    assert TOKEN not in challenge


# RFC 6750 2.1: `credentials = "Bearer" 1*SP b64token`, the scheme case-insensitive
# (RFC 9110 11.1); whitespace around a field value is not part of it (RFC 9110 5.5).
ACCEPTED = {
    "canonical": f"Bearer {TOKEN}",
    "lower-case": f"bearer {TOKEN}",
    "upper-case": f"BEARER {TOKEN}",
    "mixed-case": f"bEaReR {TOKEN}",
    "several-spaces": f"Bearer   {TOKEN}",
    "padded": f"  Bearer {TOKEN}  ",
}


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_token_is_taken_however_the_scheme_is_written(
    guarded: TestClient, method: str, path: str, case: str
) -> None:
    response = guarded.request(
        method, _url(path), headers={"authorization": ACCEPTED[case]}, json={}
    )
    # Past the token check, the answer is the route's own: 200, or 404 for a
    # pipeline or run that is not there, 422 for the empty spec or version.
    assert response.status_code in (200, 404, 422), response.text
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/healthz", "application/json"),
        ("/", "text/html"),
        ("/static/app.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/openapi.json", "application/json"),
        ("/docs", "text/html"),
    ],
)
def test_what_stays_open(guarded: TestClient, path: str, kind: str) -> None:
    response = guarded.get(path)
    assert response.status_code == 200, response.text
    assert kind in response.headers["content-type"]


def spy_compare_digest(monkeypatch: pytest.MonkeyPatch, module: str) -> list[tuple[bytes, bytes]]:
    """Record every ``hmac.compare_digest`` call ``module`` makes (and still compare)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(f"{module}.hmac.compare_digest", spy)
    return calls


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda token: create_adapter_app(_Sink(), ADAPTER_KEY, token), id="adapter"),
    ],
)
def test_the_adapter_compares_the_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[str], Any]
) -> None:
    calls = spy_compare_digest(monkeypatch, "kpipe.core.auth")
    with StarletteClient(make(TOKEN)) as client:
        wrong = client.post("/", content=b"{}", headers={"authorization": "Bearer nope"})
        missing = client.post("/", content=b"{}")
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert (b"nope", TOKEN.encode()) in calls


def test_the_api_compares_the_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, guarded: TestClient
) -> None:
    calls = spy_compare_digest(monkeypatch, "kpipe.core.auth")
    assert guarded.get("/v1/runs", headers={"authorization": "Bearer no"}).status_code == 401
    assert (b"no", TOKEN.encode()) in calls


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "ssrf",
        "trigger": {"bucket": "uploads", "prefix": "s/"},
        "output": {"bucket": "processed"},
        "steps": [{"id": "a", "function": "resize", "params": {"width": 8}}],
    }
    spec.update(changes)
    return spec


def _with_step(**step: Any) -> dict[str, Any]:
    return _spec(steps=[{"id": "a", "function": "resize", "params": {"width": 8}, **step}])


SSRF_SPECS = {
    "function-is-a-url": _with_step(function="http://169.254.169.254/latest/meta-data/"),
    "function-is-a-host": _with_step(function="metadata.google.internal:80"),
    "step-url": _with_step(url="http://169.254.169.254/"),
    "step-endpoint": _with_step(endpoint="http://10.0.0.1:8080/"),
    "step-sink": _with_step(sink="http://127.0.0.1:22/"),
    "top-level-url": _spec(url="http://169.254.169.254/"),
    "top-level-broker": _spec(broker="http://evil/"),
    "trigger-endpoint": _spec(trigger={"bucket": "uploads", "endpoint": "http://evil/"}),
    "trigger-bucket-url": _spec(trigger={"bucket": "http://169.254.169.254/"}),
    "output-url": _spec(output={"bucket": "processed", "url": "http://evil/"}),
    "output-bucket-url": _spec(output={"bucket": "s3://evil.example.com/x"}),
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records (and refuses) every outgoing connection made in the test."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize("case", sorted(SSRF_SPECS))
def test_specs_cannot_point_steps_at_urls(
    guarded: TestClient, no_network: list[object], case: str
) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    response = guarded.put("/v1/pipelines/ssrf", json=SSRF_SPECS[case], headers=auth)
    assert response.status_code == 422, response.text
    checked = guarded.post("/v1/pipelines/validate", json=SSRF_SPECS[case], headers=auth)
    assert checked.json()["valid"] is False
    assert no_network == []


@pytest.mark.parametrize("function", Catalog().names())
@pytest.mark.parametrize("field", ["url", "endpoint", "triton_url", "model_url"])
def test_no_part_takes_a_url_param(
    guarded: TestClient, catalog: Catalog, function: str, field: str
) -> None:
    spec = _spec(steps=[{"id": "a", "function": function, "params": {field: "http://evil/"}}])
    auth = {"authorization": f"Bearer {TOKEN}"}
    problems = guarded.post("/v1/pipelines/validate", json=spec, headers=auth).json()["problems"]
    assert any(p["field"] == f"steps[0].params.{field}" for p in problems), problems


def test_secrets_are_not_in_settings_reprs() -> None:
    settings = [
        RouterSettings(
            KPIPE_API_TOKEN=TOKEN, KPIPE_DATABASE_URL=f"postgresql://u:{SECRET}@db/kpipe"
        ),
        ObjectStoreSettings(MINIO_ACCESS_KEY=TOKEN, MINIO_SECRET_KEY=SECRET),
        StackConfig(MINIO_ACCESS_KEY=TOKEN, MINIO_SECRET_KEY=SECRET),
    ]
    store = MinioStore(ObjectStoreSettings(MINIO_ACCESS_KEY=TOKEN, MINIO_SECRET_KEY=SECRET))
    for shown in [*map(repr, settings), *map(str, settings), repr(store), str(vars(store))]:
        assert TOKEN not in shown
        assert SECRET not in shown


def test_in_process_logs_never_hold_the_tokens(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, catalog: Catalog
) -> None:
    caplog.set_level(logging.DEBUG)
    with StarletteClient(create_adapter_app(_Sink(), ADAPTER_KEY, TOKEN)) as adapter:
        adapter.post("/", content=b"{}", headers={"authorization": "Bearer wrong"})
        adapter.post("/", content=b"not json", headers={"authorization": f"Bearer {TOKEN}"})
        adapter.post("/", content=b'{"Records": []}', headers={"authorization": f"Bearer {TOKEN}"})
    with router_client(tmp_path, catalog, KPIPE_API_TOKEN=TOKEN) as router:
        router.put("/v1/pipelines/p", json=_spec(), headers={"authorization": f"Bearer {TOKEN}"})
        router.put("/v1/pipelines/p", json=_spec(), headers={"authorization": f"Bearer {TOKEN}x"})
        router.delete("/v1/pipelines/p", headers={"authorization": "Bearer wrong"})
    assert caplog.records  # something was logged, and none of it is a secret
    assert TOKEN not in caplog.text


def _serve(args: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0]
                raise AssertionError(f"{args} did not start: {output!r}") from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> str:
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    return output.decode(errors="replace")


@pytest.mark.slow
def test_the_real_processes_never_log_their_secrets(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    signing = SigningKey.generate("security-test").entry()
    env = {
        "KPIPE_HOME": str(tmp_path),
        "KPIPE_SIGNING_KEY": signing,
        "KPIPE_API_TOKEN": TOKEN,
        "KPIPE_WEBHOOK_TOKEN": TOKEN,
        "MINIO_ENDPOINT": f"127.0.0.1:{free_port()}",
        "MINIO_ACCESS_KEY": "kpipe-access",
        "MINIO_SECRET_KEY": SECRET,
        "K_SINK": dead,
        "KPIPE_LOG_LEVEL": "debug",
    }
    router_port, adapter_port = free_port(), free_port()
    router_url, adapter_url = f"http://127.0.0.1:{router_port}", f"http://127.0.0.1:{adapter_port}"
    router = _serve(["-m", "router", "--port", str(router_port)], env, f"{router_url}/openapi.json")
    adapter = _serve(
        ["-m", "eventing.adapter", "--port", str(adapter_port)], env, f"{adapter_url}/healthz"
    )
    try:
        with httpx.Client(timeout=30) as http:
            good, bad = {"authorization": f"Bearer {TOKEN}"}, {"authorization": "Bearer nope"}
            http.put(f"{router_url}/v1/pipelines/p", json=_spec(), headers=good)
            http.put(f"{router_url}/v1/pipelines/p", json=_spec(), headers=bad)
            http.get(f"{router_url}/healthz")  # the object store is down: its error is logged
            http.get(f"{router_url}/v1/objects/uploads/s/a.jpg", headers=good)
            http.post(f"{adapter_url}/", content=b"{}", headers=bad)
            sample = (
                b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": '
                b'{"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": 1}}}]}'
            )
            http.post(f"{adapter_url}/", content=sample, headers=good)  # broker down: logged
    finally:
        logs = _stop(router) + _stop(adapter)
    assert TOKEN not in logs
    assert SECRET not in logs
    assert signing.partition(":")[2] not in logs


@pytest.mark.parametrize("path", ["/v1/pipelines", "/v1/pipelines/p", "/v1/runs", "/events"])
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
def test_cors_is_locked_down(guarded: TestClient, path: str, origin: str) -> None:
    preflight = guarded.options(
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "PUT",
            "access-control-request-headers": "authorization",
        },
    )
    simple = guarded.get(path, headers={"origin": origin})
    for response in (preflight, simple):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers


DOCKERFILE = REPO / "Dockerfile"


def test_the_container_image_runs_as_a_non_root_user() -> None:
    if not DOCKERFILE.is_file():
        pytest.skip("no Dockerfile in the repository yet (written in another issue)")
    users = [
        line.split(None, 1)[1].strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip().upper().startswith("USER ")
    ]
    assert users, "the Dockerfile sets no USER: the container would run as root"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0"), f"the last USER is {users[-1]}"


def _kpipe_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((REPO / "deploy" / "knative").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict) or document.get("kind") not in (
                "Service",
                "Deployment",
            ):
                continue
            pod = document.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                if str(container.get("image", "")).split(":")[0].endswith("kpipe"):
                    name = f"{path.name}:{document['metadata']['name']}/{container['name']}"
                    yield (
                        name,
                        {**pod.get("securityContext", {}), **container.get("securityContext", {})},
                    )


def test_kpipe_containers_in_the_manifests_run_as_non_root() -> None:
    containers = dict(_kpipe_containers())
    if not containers:
        pytest.skip("no Knative manifests with the kpipe image")
    not_enforced = [name for name, ctx in containers.items() if ctx.get("runAsNonRoot") is not True]
    assert not_enforced == []
    as_root = [name for name, ctx in containers.items() if ctx.get("runAsUser") == 0]
    assert as_root == []


# -- forged events -------------------------------------------------------------

INTRUDER = SigningKey.generate("intruder")


def _forgeries(event: Event) -> dict[str, Event]:
    """``event`` unsigned, signed by a key nobody trusts, and by a role that may not send it."""
    wrong_role = Role.ROUTER if SIGNER[event.type] is not Role.ROUTER else part_principal("resize")
    return {
        "unsigned": event,
        "unknown-key": INTRUDER.sign(event),
        "wrong-role": KEYS[wrong_role].sign(event),
    }


def test_forged_events_are_refused_by_the_router(
    tmp_path: Path,
    catalog: Catalog,
    spec_data: dict[str, Any],
    subscriber: Callable[..., Subscriber],
) -> None:
    broker = subscriber((202, b"", {}))
    sink = HttpBrokerClient(broker.url, timeout_s=5, retries=1, backoff=Backoff(0.01))
    with make_client(tmp_path, catalog, sink=sink) as router:
        assert router.put("/v1/pipelines/privacy-blur", json=spec_data).status_code == 200
        upload = ObjectCreated("uploads", "photos/real.jpg", 10, "etag-1")
        headers, body = to_http(signed(upload.to_event("/kpipe/s3/uploads")))
        answer = router.post("/events", headers=headers, content=body)
        # The first step's request is the reply (Knative's reply), the rest go to the broker.
        assert answer.headers["ce-type"] == EventType.STEP_REQUESTED.value
        (run,) = router.get("/v1/runs").json()["runs"]
        sent = len(broker.received)

        other = ObjectCreated("uploads", "photos/real.jpg", 10, "etag-forged")
        context = PipelineContext("privacy-blur", run["version"], run["id"], "small", "resize")
        completed = Event(
            EventType.STEP_COMPLETED,
            "/kpipe/functions/resize",
            {"outputs": [{"bucket": "processed", "key": "privacy-blur/stolen.jpg"}]},
            context,
        )
        failed = Event(
            EventType.STEP_FAILED,
            "/kpipe/functions/resize",
            {"code": "internal", "message": "forged", "retryable": False},
            context,
        )
        for original in (other.to_event("/kpipe/s3/uploads"), completed, failed):
            for how, forged in _forgeries(original).items():
                headers, body = to_http(forged)
                for path in ("/events", "/dead-letters"):
                    refused = router.post(path, headers=headers, content=body)
                    assert refused.status_code == 401, (original.type, how, path, refused.text)
                    assert refused.json()["error"]["code"] == "unauthenticated"

        assert [r["id"] for r in router.get("/v1/runs").json()["runs"]] == [run["id"]]
        after = router.get(f"/v1/runs/{run['id']}").json()
        assert (after["status"], after["steps"]) == (run["status"], run["steps"])
        assert len(broker.received) == sent  # nothing was routed onwards


@pytest.mark.slow
@pytest.mark.stack
def test_forged_events_posted_by_hand_change_nothing(stack: Stack) -> None:
    """As a user of `make up` could try it: forge events at the router, the broker and a part."""
    stack.apply(
        one_step(
            "sec-forged",
            "forged/",
            {"id": "small", "function": "resize", "params": {"max_side": 32}},
        )
    )
    etag = stack.upload("forged/real.jpg", noise_jpeg())
    run = stack.wait_run("sec-forged", "forged/real.jpg")
    assert run["status"] == "succeeded", run
    output = stack.read("processed", "sec-forged/forged/real.jpg")

    upload = ObjectCreated("uploads", "forged/real.jpg", 10, "etag-forged")
    context = PipelineContext("sec-forged", run["version"], run["id"], "small", "resize")
    stolen = ObjectRef("processed", "stolen/real.jpg")
    step = StepRequest(
        source=ObjectRef("uploads", "forged/real.jpg"),
        inputs=(ObjectRef("uploads", "forged/real.jpg"),),
        calls=(StepCall("small", "resize", {"max_side": 8}),),
        output=stolen,
    )
    events = [
        upload.to_event("/kpipe/s3/uploads"),
        Event(EventType.STEP_REQUESTED, "/kpipe/router", step.to_data(), context),
        Event(
            EventType.STEP_FAILED,
            "/kpipe/functions/resize",
            {"code": "internal", "message": "forged", "retryable": False},
            context,
        ),
    ]
    forgeries = [f for e in events for f in _forgeries(e).values()]
    part = f"http://127.0.0.1:{StackConfig.model_validate(stack.env).part_port('resize')}/"
    before = counters(stack)
    with httpx.Client(timeout=10) as http:
        for forged in forgeries:
            headers, body = to_http(forged)
            # Straight at the router's event endpoint, and at the part: refused.
            assert (
                http.post(f"{stack.api}/events", headers=headers, content=body).status_code == 401
            )
            if forged.type is EventType.STEP_REQUESTED:
                assert http.post(part, headers=headers, content=body).status_code == 401
            # Into the broker, which accepts any event, as a Knative broker does:
            # its receivers refuse it, and so does the dead-letter sink.
            assert (
                http.post(broker_url(stack, "/"), headers=headers, content=body).status_code == 202
            )
    wait_counters(stack, before, {"failed": len(forgeries), "dropped": len(forgeries)}, 30)

    assert [r["id"] for r in stack.runs_of("sec-forged", "forged/real.jpg")] == [run["id"]]
    after = stack.runs_of("sec-forged", "forged/real.jpg")[0]
    assert (after["status"], after["steps"]) == (run["status"], run["steps"])
    assert stack.read("processed", "sec-forged/forged/real.jpg") == output
    assert not list(stack.minio().list_objects("processed", prefix="stolen/", recursive=True))
    assert stack.minio().stat_object("uploads", "forged/real.jpg").etag == etag
