"""``Applier`` through the real kubernetes client against a small fake API server.

The fake records every request and keeps applied objects; it is not an API
server (no validation, no field ownership), so this checks the requests apply
builds and how it reads readiness, not what a real cluster does with them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from kpipe.deploy.apply import Applier, ApplyFailed, fill_placeholders
from kpipe.deploy.render import overlay_dir, render

kubernetes = pytest.importorskip("kubernetes")


@dataclass
class FakeApiServer:
    """Stores PATCHed objects by path; GET answers them (with ``status``) or 404."""

    objects: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    refuse: str | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                fake.requests.append(("GET", path, {}, ""))
                if path not in fake.objects:
                    self._answer(404, {"message": "not found"})
                else:
                    self._answer(200, {**fake.objects[path], "status": fake.status.get(path, {})})

            def do_PATCH(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers["content-length"]))
                query = dict(parse_qsl(parts.query))
                fake.requests.append(("PATCH", parts.path, query, self.headers["content-type"]))
                if fake.refuse and parts.path.endswith(fake.refuse):
                    self._answer(422, {"message": "spec.template: field is immutable"})
                    return
                fake.objects[parts.path] = json.loads(body)
                self._answer(200, fake.objects[parts.path])

        return Handler


@pytest.fixture
def fake_api(free_port: Callable[[], int]) -> Iterator[tuple[FakeApiServer, Any]]:
    fake = FakeApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_port}")
    with kubernetes.client.ApiClient(configuration) as api:
        yield fake, api
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_apply_server_side_applies_everything_in_order(fake_api: tuple[FakeApiServer, Any]) -> None:
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    done = Applier(api).apply(objs)
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert patches[0][1] == "/api/v1/namespaces/kpipe"
    assert {r[2]["fieldManager"] for r in patches} == {"kpipe"}
    assert {r[2]["force"] for r in patches} == {"true"}
    assert {r[3] for r in patches} == {"application/apply-patch+yaml"}
    paths = [r[1] for r in patches]
    assert "/apis/serving.knative.dev/v1/namespaces/kpipe/services/router" in paths
    assert "/api/v1/namespaces/kpipe/services/minio" in paths
    # Triggers after the Knative Services they deliver to, the broker before both.
    assert (
        paths.index("/apis/eventing.knative.dev/v1/namespaces/kpipe/brokers/default")
        < paths.index("/apis/serving.knative.dev/v1/namespaces/kpipe/services/router")
        < paths.index("/apis/eventing.knative.dev/v1/namespaces/kpipe/triggers/part-resize")
    )
    assert len(done) == len(objs) + 1


def test_missing_secrets_are_created_with_random_values_and_existing_ones_kept(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    kept = "/api/v1/namespaces/kpipe/secrets/kpipe-api"
    fake.objects[kept] = {"stringData": {"KPIPE_API_TOKEN": "mine"}}
    done = {d.name: d.action for d in Applier(api).apply(render(overlay_dir("dev")))}
    assert done["secret/kpipe-api"] == "kept"
    assert done["secret/kpipe-webhook"] == "created"
    assert fake.objects[kept] == {"stringData": {"KPIPE_API_TOKEN": "mine"}}
    created = fake.objects["/api/v1/namespaces/kpipe/secrets/kpipe-object-store"]["stringData"]
    assert created["MINIO_ACCESS_KEY"] == "kpipe"
    assert len(created["MINIO_SECRET_KEY"]) == 48
    assert "CHANGE_ME" not in json.dumps(fake.objects)


def test_dry_run_asks_the_server_to_persist_nothing(fake_api: tuple[FakeApiServer, Any]) -> None:
    fake, api = fake_api
    Applier(api).apply(render(overlay_dir("gpu")), dry_run=True)
    assert {r[2].get("dryRun") for r in fake.requests if r[0] == "PATCH"} == {"All"}


def test_a_refused_object_raises_with_the_servers_message(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    fake.refuse = "/jobs/minio-setup"
    with pytest.raises(ApplyFailed, match=r"job.batch/minio-setup: HTTP 422: .*immutable"):
        Applier(api).apply(render(overlay_dir("dev")))


def test_readiness_reads_each_kinds_status(fake_api: tuple[FakeApiServer, Any]) -> None:
    fake, api = fake_api
    objs = [
        o
        for o in render(overlay_dir("dev"))
        if o["metadata"]["name"] in ("router", "triton", "minio-setup")
    ]
    applier = Applier(api)
    applier.apply(objs)
    fake.status["/apis/serving.knative.dev/v1/namespaces/kpipe/services/router"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "url": "http://router.kpipe.example.com",
    }
    fake.status["/apis/apps/v1/namespaces/kpipe/deployments/triton"] = {"availableReplicas": 0}
    report = {r.name: r for r in applier.wait(objs, timeout_s=0.2, poll_s=0.05)}
    assert report["service.serving.knative.dev/router"].ready
    assert report["service.serving.knative.dev/router"].detail == "http://router.kpipe.example.com"
    assert not report["deployment.apps/triton"].ready
    assert report["deployment.apps/triton"].detail == "0/1 replicas ready"
    assert not report["job.batch/minio-setup"].ready
    assert report["service/triton"].ready


def test_fill_placeholders_only_replaces_change_me() -> None:
    secret = {"stringData": {"A": "CHANGE_ME", "B": "kept"}}
    assert fill_placeholders(secret, lambda: "t0k") == {"stringData": {"A": "t0k", "B": "kept"}}
