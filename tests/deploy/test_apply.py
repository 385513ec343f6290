"""``Applier`` through the real kubernetes client against a small fake API server.

The fake records every request and keeps applied objects; it is not an API
server (no validation, no field ownership), so this checks the requests apply
builds and how it reads readiness, not what a real cluster does with them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import kubernetes
import pytest
import yaml
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eventing.signing import SigningKey, TrustedKeys
from functions.catalog import default_catalog
from kpipe.deploy.apply import (
    Applier,
    ApplyFailed,
    UntrustedSigningKey,
    fill_placeholders,
    generate,
)
from kpipe.deploy.cli import deploy
from kpipe.deploy.keys import PRINCIPAL_ANNOTATION, BadSigningKey, PrincipalKey
from kpipe.deploy.render import overlay_dir, render

NS = "/api/v1/namespaces/kpipe"
TRUSTED = f"{NS}/configmaps/kpipe-trusted-keys"


@dataclass
class FakeApiServer:
    """Stores PATCHed objects by path; GET answers them (with ``status``) or 404.

    As the API server does, it stores a Secret's ``stringData`` base64-encoded
    under ``data``.
    """

    objects: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    refuse: str | None = None
    # (status, message) the server answers every EventPolicy with, as Knative's
    # webhook does while authentication-oidc is off.
    refuse_policies: tuple[int, str] | None = None

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
                if fake.refuse_policies and "/eventpolicies/" in parts.path:
                    code, message = fake.refuse_policies
                    self._answer(code, {"message": message})
                    return
                fake.objects[parts.path] = _as_stored(json.loads(body))
                self._answer(200, fake.objects[parts.path])

        return Handler


def _as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    data = {k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}
    return {**{k: v for k, v in obj.items() if k != "stringData"}, "data": data}


def secret(values: dict[str, str]) -> dict[str, Any]:
    """A Secret as the API server returns it."""
    return _as_stored({"kind": "Secret", "stringData": values})


def secret_values(stored: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in stored["data"].items()}


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
    # EventPolicies last: a cluster that refuses them has everything else.
    policies = [i for i, p in enumerate(paths) if "/eventpolicies/" in p]
    assert policies == list(range(len(paths) - len(policies), len(paths)))


OIDC_OFF = (
    'admission webhook "validation.webhook.eventing.knative.dev" denied the request: '
    "validation failed: oidc-authentication feature not enabled"
)


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        pytest.param((400, OIDC_OFF), "authentication-oidc is off", id="oidc-off"),
        pytest.param(
            (404, "the server could not find the requested resource"), "1.15", id="no-crd"
        ),
    ],
)
def test_eventpolicies_the_cluster_does_not_take_yet_are_skipped(
    fake_api: tuple[FakeApiServer, Any], answer: tuple[int, str], detail: str
) -> None:
    fake, api = fake_api
    fake.refuse_policies = answer
    objs = render(overlay_dir("dev"))
    done = Applier(api).apply(objs)
    skipped = {d.name for d in done if d.action == "skipped"}
    assert skipped == {
        f"eventpolicy.eventing.knative.dev/{o['metadata']['name']}"
        for o in objs
        if o["kind"] == "EventPolicy"
    }
    assert all(detail in d.detail for d in done if d.action == "skipped")
    assert "/apis/sources.knative.dev/v1/namespaces/kpipe/sinkbindings/adapter-sink" in fake.objects


def test_any_other_refusal_of_an_eventpolicy_fails(fake_api: tuple[FakeApiServer, Any]) -> None:
    fake, api = fake_api
    fake.refuse_policies = (
        400,
        "validation failed: '*' is only allowed as suffix: spec.from[0].sub",
    )
    with pytest.raises(ApplyFailed, match="only allowed as suffix"):
        Applier(api).apply(render(overlay_dir("dev")))


def test_missing_secrets_are_created_with_random_values_and_existing_ones_kept(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    kept = f"{NS}/secrets/kpipe-api"
    fake.objects[kept] = secret({"KPIPE_API_TOKEN": "mine"})
    done = {d.name: d.action for d in Applier(api).apply(render(overlay_dir("dev")))}
    assert done["secret/kpipe-api"] == "kept"
    assert done["secret/kpipe-webhook"] == "created"
    assert fake.objects[kept] == secret({"KPIPE_API_TOKEN": "mine"})
    created = secret_values(fake.objects[f"{NS}/secrets/kpipe-parts-store"])
    assert created["MINIO_ACCESS_KEY"] == "kpipe-parts"
    assert len(created["MINIO_SECRET_KEY"]) == 48
    root = secret_values(fake.objects[f"{NS}/secrets/kpipe-minio-root"])
    assert root["MINIO_ROOT_PASSWORD"] not in {created["MINIO_SECRET_KEY"], "CHANGE_ME"}
    assert "CHANGE_ME" not in json.dumps(fake.objects)
    assert "Q0hBTkdFX01F" not in json.dumps(fake.objects)  # base64 of CHANGE_ME


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


# -- signing keys ----------------------------------------------------------------

# Every principal of the cluster: one per part of the catalogue.
PARTS = tuple(f"part/{f}" for f in default_catalog().names())
PRINCIPALS = ("router", "adapter", *PARTS)


def _secret_name(principal: str) -> str:
    return f"kpipe-{principal.replace('/', '-').replace('_', '-')}-signing"


def _secret_path(principal: str) -> str:
    return f"{NS}/secrets/{_secret_name(principal)}"


def _signing_key(fake: FakeApiServer, principal: str) -> PrincipalKey:
    stored = secret_values(fake.objects[_secret_path(principal)])
    return PrincipalKey.parse(principal, stored["KPIPE_SIGNING_KEY"])


def _trusted(fake: FakeApiServer) -> set[str]:
    return set(fake.objects[TRUSTED]["data"]["KPIPE_TRUSTED_KEYS"].split(","))


def test_a_first_apply_generates_a_key_per_principal_and_trusts_exactly_them(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    done = {d.name: d.action for d in Applier(api).apply(render(overlay_dir("dev")))}
    assert "secret/kpipe-part-detect-faces-signing" in done
    assert {done[f"secret/{_secret_name(p)}"] for p in PRINCIPALS} == {"created"}
    assert done["configmap/kpipe-trusted-keys"] == "created"
    keys = {p: _signing_key(fake, p) for p in PRINCIPALS}
    assert _trusted(fake) == {k.trusted_entry() for k in keys.values()}
    assert len({k.env_value() for k in keys.values()}) == len(PRINCIPALS)
    assert keys["part/detect_faces"].key_id.startswith("part-detect_faces-")
    # The receivers' parser reads it, one principal per part.
    trusted = TrustedKeys.parse(fake.objects[TRUSTED]["data"]["KPIPE_TRUSTED_KEYS"])
    assert set(trusted.keys) == set(PRINCIPALS)


def test_a_generated_key_signs_and_its_trusted_entry_verifies(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    """The formats of design-round.md, checked with the raw Ed25519 operations."""
    fake, api = fake_api
    Applier(api).apply(render(overlay_dir("dev")))
    key = _signing_key(fake, "part/resize")
    entry = next(e for e in _trusted(fake) if e.startswith("part/resize="))
    principal, _, rest = entry.partition("=")
    key_id, _, public_b64 = rest.partition(":")
    assert (principal, key_id) == ("part/resize", key.key_id)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    signature = key.key.private.sign(b"step.completed")
    public.verify(signature, b"step.completed")
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"step.failed")


def test_each_part_holds_only_its_own_key(fake_api: tuple[FakeApiServer, Any]) -> None:
    """No part's key is trusted for another part: one key per principal, trusted for it alone."""
    fake, api = fake_api
    Applier(api).apply(render(overlay_dir("dev")))
    entries = [e.partition("=") for e in _trusted(fake)]
    owners: dict[str, set[str]] = {}
    for principal, _, rest in entries:
        owners.setdefault(rest, set()).add(principal)
    assert all(len(p) == 1 for p in owners.values())
    assert _signing_key(fake, "part/resize") != _signing_key(fake, "part/blur")


def test_existing_keys_are_kept_and_a_second_apply_changes_nothing(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    Applier(api).apply(objs)
    before = {p: _signing_key(fake, p) for p in PRINCIPALS}
    trusted_before = fake.objects[TRUSTED]
    done = {d.name: d.action for d in Applier(api).apply(objs)}
    assert {a for n, a in done.items() if n.endswith("-signing")} == {"kept"}
    assert done["configmap/kpipe-trusted-keys"] == "kept"
    assert {p: _signing_key(fake, p) for p in PRINCIPALS} == before
    assert fake.objects[TRUSTED] is trusted_before


def test_trusted_keys_are_built_from_existing_signing_secrets(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    """Secrets made by hand (GitOps) are kept, and the trusted keys trust them."""
    fake, api = fake_api
    mine = PrincipalKey.generate("part/annotate")
    fake.objects[_secret_path("part/annotate")] = secret({"KPIPE_SIGNING_KEY": mine.env_value()})
    Applier(api).apply(render(overlay_dir("dev")))
    assert _signing_key(fake, "part/annotate") == mine
    assert mine.trusted_entry() in _trusted(fake)


@pytest.mark.parametrize("principal", ["part/resize", "router"])
def test_a_rotation_in_progress_is_accepted(
    fake_api: tuple[FakeApiServer, Any], principal: str
) -> None:
    """Old and new key both trusted, the signer switched to the new one: apply goes on."""
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    Applier(api).apply(objs)
    old = _signing_key(fake, principal)
    others = {p: _signing_key(fake, p) for p in PRINCIPALS if p != principal}
    new = PrincipalKey.generate(principal)
    # 1. trust the new key beside the old one; 2. switch the signer's Secret.
    value = fake.objects[TRUSTED]["data"]["KPIPE_TRUSTED_KEYS"] + "," + new.trusted_entry()
    fake.objects[TRUSTED] = {"data": {"KPIPE_TRUSTED_KEYS": value}}
    fake.objects[_secret_path(principal)] = secret({"KPIPE_SIGNING_KEY": new.env_value()})
    Applier(api).apply(objs)
    assert _signing_key(fake, principal) == new
    assert {old.trusted_entry(), new.trusted_entry()} <= _trusted(fake)
    assert {p: _signing_key(fake, p) for p in others} == others
    # 3. drop the old entry: apply still goes on, and receivers verify the new key only.
    value = ",".join(sorted(_trusted(fake) - {old.trusted_entry()}))
    fake.objects[TRUSTED] = {"data": {"KPIPE_TRUSTED_KEYS": value}}
    Applier(api).apply(objs)
    trusted = TrustedKeys.parse(value)
    assert set(trusted.keys[principal]) == {new.key_id}


def test_a_signing_key_the_trusted_keys_do_not_trust_stops_apply_before_anything(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    Applier(api).apply(objs)
    switched = PrincipalKey.generate("part/resize")  # switched without adding its public key
    fake.objects[_secret_path("part/resize")] = secret({"KPIPE_SIGNING_KEY": switched.env_value()})
    fake.requests.clear()
    with pytest.raises(UntrustedSigningKey, match=re.escape(switched.trusted_entry())) as refused:
        Applier(api).apply(objs)
    assert refused.value.untrusted == (switched,)
    assert refused.value.missing == ()
    assert [r for r in fake.requests if r[0] == "PATCH"] == []


def test_one_parts_key_trusted_for_another_part_is_not_trusted(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    """The entry must name the principal: blur's key listed as part/blur does not cover resize."""
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    Applier(api).apply(objs)
    blur = _signing_key(fake, "part/blur")
    # resize's Secret now holds blur's key, which is trusted, but only for part/blur.
    fake.objects[_secret_path("part/resize")] = secret({"KPIPE_SIGNING_KEY": blur.env_value()})
    with pytest.raises(UntrustedSigningKey, match="does not trust the part/resize key"):
        Applier(api).apply(objs)


def test_missing_signing_secrets_are_not_generated_when_nothing_would_trust_them(
    fake_api: tuple[FakeApiServer, Any],
) -> None:
    fake, api = fake_api
    objs = render(overlay_dir("dev"))
    Applier(api).apply(objs)
    del fake.objects[_secret_path("adapter")]
    del fake.objects[_secret_path("part/detect_faces")]
    fake.requests.clear()
    with pytest.raises(UntrustedSigningKey, match="kpipe-adapter-signing is missing") as refused:
        Applier(api).apply(objs)
    assert set(refused.value.missing) == {"adapter", "part/detect_faces"}
    assert "kpipe deploy signing-key part/detect_faces" in str(refused.value)
    assert [r for r in fake.requests if r[0] == "PATCH"] == []
    assert _secret_path("adapter") not in fake.objects


def test_a_signing_secret_of_the_shared_parts_key_is_refused() -> None:
    """The one key all parts shared is gone: a Secret still naming it cannot be applied."""
    old = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kpipe-parts-signing", "annotations": {PRINCIPAL_ANNOTATION: "parts"}},
        "stringData": {"KPIPE_SIGNING_KEY": "CHANGE_ME"},
    }
    with pytest.raises(BadSigningKey, match="shared 'parts' key is gone"):
        generate([old], lambda _: None)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("CHANGE_ME", id="placeholder"),
        pytest.param("k1:" + base64.b64encode(b"short").decode(), id="not-32-bytes"),
        pytest.param("k1:not base64!", id="not-base64"),
        pytest.param(":" + base64.b64encode(bytes(32)).decode(), id="no-key-id"),
    ],
)
def test_a_malformed_existing_signing_secret_is_reported(
    fake_api: tuple[FakeApiServer, Any], value: str
) -> None:
    fake, api = fake_api
    fake.objects[f"{NS}/secrets/kpipe-router-signing"] = secret({"KPIPE_SIGNING_KEY": value})
    with pytest.raises(BadSigningKey, match="router signing key is malformed"):
        Applier(api).apply(render(overlay_dir("dev")))


def test_generate_without_a_cluster_fills_everything() -> None:
    objs = render(overlay_dir("gpu"))
    created = generate(objs, lambda _: None)
    assert all(o is not None for o in created.values())
    assert "CHANGE_ME" not in json.dumps(list(created.values()))
    assert set(created) == {
        *(f"secret/{o['metadata']['name']}" for o in objs if o["kind"] == "Secret"),
        "configmap/kpipe-trusted-keys",
    }


def test_cli_secrets_prints_what_a_first_apply_creates() -> None:
    result = CliRunner().invoke(deploy, ["secrets", "--overlay", "dev", "--namespace", "vision"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert {d["metadata"]["namespace"] for d in docs} == {"vision"}
    signing = [
        PrincipalKey.parse(
            d["metadata"]["annotations"][PRINCIPAL_ANNOTATION], d["stringData"]["KPIPE_SIGNING_KEY"]
        )
        for d in docs
        if d["metadata"]["name"].endswith("-signing")
    ]
    assert {k.principal for k in signing} == set(PRINCIPALS)
    trusted = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["KPIPE_TRUSTED_KEYS"]
    assert set(trusted.split(",")) == {k.trusted_entry() for k in signing}


@pytest.mark.parametrize("principal", ["part/resize", "part/detect_faces", "router", "adapter"])
def test_cli_signing_key_prints_a_key_and_its_trusted_entry(principal: str) -> None:
    result = CliRunner().invoke(deploy, ["signing-key", principal])
    assert result.exit_code == 0, result.output
    assigned = dict(line.split("=", 1) for line in result.output.splitlines())
    key = PrincipalKey.parse(principal, assigned["KPIPE_SIGNING_KEY"])
    assert assigned["TRUSTED_ENTRY"] == key.trusted_entry()
    assert assigned["TRUSTED_ENTRY"].startswith(f"{principal}={principal.replace('/', '-')}-")
    # What the part itself reads as KPIPE_SIGNING_KEY.
    assert SigningKey.parse(assigned["KPIPE_SIGNING_KEY"]).key_id == key.key_id


@pytest.mark.parametrize(
    "principal",
    [
        pytest.param("parts", id="the-old-shared-key"),
        pytest.param("part/detect-faces", id="service-name-not-function"),
        pytest.param("part/nope", id="not-in-the-catalogue"),
        pytest.param("part", id="no-function"),
    ],
)
def test_cli_signing_key_refuses_an_unknown_principal(principal: str) -> None:
    result = CliRunner().invoke(deploy, ["signing-key", principal])
    assert result.exit_code == 2
    assert "part/detect_faces" in result.output
