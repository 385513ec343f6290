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
from eventing.contract import Event
from functions.catalog import Catalog
from functions.store import MinioStore
from kpipe.settings import ObjectStoreSettings
from kpipe.stack import StackConfig
from router.settings import RouterSettings
from tests.e2e.conftest import REPO
from tests.reliability._apps import router_client

TOKEN = "tok-3f9a1c7e-never-log-me"
SECRET = "sec-8d2b4e6f-never-log-me"


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
]


def test_the_list_of_mutations_is_every_mutating_route(guarded: TestClient) -> None:
    openapi = guarded.get("/openapi.json").json()
    found = {
        (method.upper(), path)
        for path, operations in openapi["paths"].items()
        for method in operations
        if method in ("put", "post", "delete", "patch")
    }
    # validate saves nothing; /events and /dead-letters are the broker's, inside the cluster
    readonly = {
        ("POST", "/v1/pipelines/validate"),
        ("POST", "/events"),
        ("POST", "/dead-letters"),
    }
    assert found - readonly == set(MUTATIONS)


@pytest.mark.parametrize(("method", "path"), MUTATIONS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", TOKEN[:-1]])
def test_mutations_need_the_api_token(
    guarded: TestClient, method: str, path: str, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    url = path.format(name="p", run_id="r")
    response = guarded.request(method, url, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in response.text


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
        pytest.param(lambda token: create_adapter_app(_Sink(), token), id="adapter"),
    ],
)
def test_the_adapter_compares_the_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[str], Any]
) -> None:
    calls = spy_compare_digest(monkeypatch, "eventing.adapter")
    with StarletteClient(make(TOKEN)) as client:
        wrong = client.post("/", content=b"{}", headers={"authorization": "Bearer nope"})
        missing = client.post("/", content=b"{}")
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert (b"nope", TOKEN.encode()) in calls


def test_the_api_compares_the_token_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, guarded: TestClient
) -> None:
    calls = spy_compare_digest(monkeypatch, "router.deps")
    assert (
        guarded.delete("/v1/pipelines/p", headers={"authorization": "Bearer no"}).status_code == 401
    )
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
    assert guarded.post("/v1/pipelines/validate", json=SSRF_SPECS[case]).json()["valid"] is False
    assert no_network == []


@pytest.mark.parametrize("function", Catalog().names())
@pytest.mark.parametrize("field", ["url", "endpoint", "triton_url", "model_url"])
def test_no_part_takes_a_url_param(
    guarded: TestClient, catalog: Catalog, function: str, field: str
) -> None:
    spec = _spec(steps=[{"id": "a", "function": function, "params": {field: "http://evil/"}}])
    problems = guarded.post("/v1/pipelines/validate", json=spec).json()["problems"]
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
    with StarletteClient(create_adapter_app(_Sink(), TOKEN)) as adapter:
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
    env = {
        "KPIPE_HOME": str(tmp_path),
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
    router = _serve(["-m", "router", "--port", str(router_port)], env, f"{router_url}/v1/functions")
    adapter = _serve(
        ["-m", "eventing.adapter", "--port", str(adapter_port)], env, f"{adapter_url}/healthz"
    )
    try:
        with httpx.Client(timeout=30) as http:
            good, bad = {"authorization": f"Bearer {TOKEN}"}, {"authorization": "Bearer nope"}
            http.put(f"{router_url}/v1/pipelines/p", json=_spec(), headers=good)
            http.put(f"{router_url}/v1/pipelines/p", json=_spec(), headers=bad)
            http.get(f"{router_url}/healthz")  # the object store is down: its error is logged
            http.get(f"{router_url}/v1/objects/uploads/s/a.jpg")
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
