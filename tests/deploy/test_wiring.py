"""Cross-references: every part, trigger, sink, env var and image is wired as the code expects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from eventing.adapter import main as adapter_main
from eventing.contract import EXT_FUNCTION, ROUTER_EVENT_TYPES, EventType
from eventing.oidc import OIDCSettings
from eventing.signing import part_principal
from functions.catalog import default_catalog
from kpipe.core import settings as kpipe_settings
from kpipe.core.settings import EventSettings, InferenceSettings, ObjectStoreSettings
from kpipe.deploy.keys import (
    PRINCIPAL_ANNOTATION,
    SIGNING_KEY_ENV,
    TRUSTED_KEYS_ENV,
    signing_secret_name,
)
from router.settings import RouterSettings
from tests.deploy.conftest import by_kind

KSVC = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"
EVENT_POLICY = "eventing.knative.dev/v1alpha1"
VISIBILITY = "networking.knative.dev/visibility"
# The public API and web page; every other Knative Service is cluster-local.
PUBLIC = "router"
EVENTS = "router-events"
Obj = dict[str, Any]


def _aliases(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the env var it reads (the first alias)."""
    out = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]
        if isinstance(alias, str):
            out[name] = alias
    return out


def _local_only(cls: type[BaseSettings]) -> set[str]:
    """Env vars whose default only works on one machine (loopback, minioadmin)."""
    return {
        _aliases(cls)[name]
        for name, field in cls.model_fields.items()
        if isinstance(field.default, str)
        and ("127.0.0.1" in field.default or field.default == "minioadmin")
    }


SINK = _aliases(EventSettings)["sink"]
WEBHOOK_TOKEN = str(next(p for p in adapter_main.params if p.name == "token").envvar)
OIDC_AUDIENCE = _aliases(OIDCSettings)["audience"]
# Generated at render time (kpipe.deploy.subjects): each receiver's senders.
OIDC_SUBJECTS = _aliases(OIDCSettings)["subjects"]
SIGNING = {SIGNING_KEY_ENV, TRUSTED_KEYS_ENV}
PART_ENV = _local_only(ObjectStoreSettings) | _local_only(InferenceSettings)
DATABASE = {_aliases(RouterSettings)["database_url"], "KPIPE_ROUTER_SERVES"}
REQUIRED_ENV: dict[str, set[str]] = {
    "part": PART_ENV | SIGNING | {OIDC_AUDIENCE, OIDC_SUBJECTS},
    # PostgreSQL instead of the SQLite file, and an API that is not open to all.
    PUBLIC: PART_ENV | DATABASE | SIGNING | {_aliases(RouterSettings)["api_token"], SINK},
    EVENTS: PART_ENV | DATABASE | SIGNING | {OIDC_AUDIENCE, OIDC_SUBJECTS, SINK},
    "adapter": SIGNING | {SINK, WEBHOOK_TOKEN},
}


def _component(ksvc: Obj) -> str:
    return str(ksvc["metadata"]["labels"]["app.kubernetes.io/component"])


def _role(ksvc: Obj) -> str:
    """``part`` for every part, else the Service's name."""
    return "part" if _component(ksvc) == "part" else str(ksvc["metadata"]["name"])


def _env(ksvc: Obj) -> dict[str, str]:
    """The literal env values of a Knative Service's container."""
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _env_names(objs: list[Obj], ksvc: Obj) -> set[str]:
    """Every env var the ksvc's container gets: env, envFrom and the SinkBinding's K_SINK."""
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container.get("env", [])}
    sources = {("ConfigMap", o["metadata"]["name"]): o for o in objs if o["kind"] == "ConfigMap"}
    sources |= {("Secret", o["metadata"]["name"]): o for o in objs if o["kind"] == "Secret"}
    for ref in container.get("envFrom", []):
        kind, source = (
            ("ConfigMap", ref["configMapRef"])
            if "configMapRef" in ref
            else (
                "Secret",
                ref["secretRef"],
            )
        )
        data = sources[(kind, source["name"])]
        names |= set(data.get("data", {})) | set(data.get("stringData", {}))
    bindings = by_kind(objs, "sources.knative.dev/v1", "SinkBinding").values()
    if any(b["spec"]["subject"]["name"] == ksvc["metadata"]["name"] for b in bindings):
        names.add(SINK)
    return names


def test_every_part_has_a_service_and_a_trigger(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    triggers = by_kind(rendered, EVENTING, "Trigger").values()
    for part in default_catalog().names():
        name = part.replace("_", "-")
        env = services[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "FUNCTION_TARGET", "value": part} in env
        filters = [t["spec"]["filter"]["attributes"] for t in triggers]
        matching = [t for t in triggers if t["spec"]["subscriber"]["ref"]["name"] == name]
        assert [t["spec"]["filter"]["attributes"] for t in matching] == [
            {"type": EventType.STEP_REQUESTED.value, EXT_FUNCTION: part}
        ], filters


def test_the_catalogue_has_a_part_for_every_part_service(rendered: list[Obj]) -> None:
    targets = {
        _env(s)["FUNCTION_TARGET"]
        for s in by_kind(rendered, KSVC, "Service").values()
        if _component(s) == "part"
    }
    assert targets == set(default_catalog().names())


def test_the_router_gets_its_event_types_on_the_cluster_local_events(
    rendered: list[Obj],
) -> None:
    triggers = by_kind(rendered, EVENTING, "Trigger").values()
    to_router = {
        t["spec"]["filter"]["attributes"]["type"]
        for t in triggers
        if t["spec"]["subscriber"]["ref"]["name"] == EVENTS
        and t["spec"]["subscriber"]["uri"] == "/events"
    }
    assert to_router == {t.value for t in ROUTER_EVENT_TYPES}
    assert not [t for t in triggers if t["spec"]["subscriber"]["ref"]["name"] == PUBLIC]


def test_every_reference_names_an_object_of_the_render(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    brokers = by_kind(rendered, EVENTING, "Broker")
    refs: list[Obj] = []
    for trigger in by_kind(rendered, EVENTING, "Trigger").values():
        assert trigger["spec"]["broker"] in brokers
        refs += [
            trigger["spec"]["subscriber"]["ref"],
            trigger["spec"]["delivery"]["deadLetterSink"]["ref"],
        ]
    for broker in brokers.values():
        refs.append(broker["spec"]["delivery"]["deadLetterSink"]["ref"])
    for binding in by_kind(rendered, "sources.knative.dev/v1", "SinkBinding").values():
        refs += [binding["spec"]["subject"], binding["spec"]["sink"]["ref"]]
    for ref in refs:
        target = services if ref["kind"] == "Service" else brokers
        assert ref["name"] in target, ref
        assert by_kind(rendered, ref["apiVersion"], ref["kind"])


def test_undeliverable_events_go_to_the_routers_dead_letter_endpoint(rendered: list[Obj]) -> None:
    holders = [
        *by_kind(rendered, EVENTING, "Trigger").values(),
        *by_kind(rendered, EVENTING, "Broker").values(),
    ]
    for holder in holders:
        delivery = holder["spec"]["delivery"]
        assert delivery["deadLetterSink"]["ref"]["name"] == EVENTS
        assert delivery["deadLetterSink"]["uri"] == "/dead-letters"
        assert delivery["backoffPolicy"] == "exponential"
        assert delivery["retry"] >= 1


def test_parts_are_retried_long_enough_for_triton_to_come_back(rendered: list[Obj]) -> None:
    """Parts answer 503 for KPIPE_RETRY_FOR_S; their triggers retry at least that long.

    Knative waits backoffDelay * 2^n before retry n; counted from n = 0 (the
    shorter reading), the waits must still add up to KPIPE_RETRY_FOR_S.
    """
    retry_for_s = float(
        by_kind(rendered, "v1", "ConfigMap")["kpipe-config"]["data"]["KPIPE_RETRY_FOR_S"]
    )
    services = by_kind(rendered, KSVC, "Service")
    for trigger in by_kind(rendered, EVENTING, "Trigger").values():
        target = services[trigger["spec"]["subscriber"]["ref"]["name"]]
        delivery = trigger["spec"]["delivery"]
        policy = (delivery["retry"], delivery["backoffPolicy"], delivery["backoffDelay"])
        if _component(target) == "part":
            retries, kind, delay = policy
            assert (kind, delay) == ("exponential", "PT0.2S"), trigger["metadata"]["name"]
            assert sum(0.2 * 2**n for n in range(retries)) >= retry_for_s, policy
        else:
            assert policy == (5, "exponential", "PT0.5S"), trigger["metadata"]["name"]


def test_every_container_gets_the_env_the_code_needs(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service").values()
    assert {_role(s) for s in services} == set(REQUIRED_ENV)
    for ksvc in services:
        missing = REQUIRED_ENV[_role(ksvc)] - _env_names(rendered, ksvc)
        assert not missing, f"{ksvc['metadata']['name']} lacks {sorted(missing)}"


def test_the_configmap_only_names_env_vars_the_code_reads(rendered: list[Obj]) -> None:
    known = {"PYTHONUNBUFFERED"} | set(_aliases(OIDCSettings).values())
    for value in vars(kpipe_settings).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
        ):
            known |= set(_aliases(value).values())
    config = by_kind(rendered, "v1", "ConfigMap")["kpipe-config"]
    assert set(config["data"]) - known == set()
    # OIDC stays off until the operator names the cluster's issuer.
    assert OIDCSettings.model_validate(config["data"]).enabled is False


def autoscaling_problems(ksvc: Obj) -> list[str]:
    """Autoscaling annotations Knative would ignore (on the Service) or that are missing."""
    problems = [
        f"metadata.annotations.{k}"
        for k in ksvc["metadata"].get("annotations", {})
        if k.startswith("autoscaling.knative.dev/")
    ]
    template = ksvc["spec"]["template"].get("metadata", {}).get("annotations", {})
    problems += [
        f"missing {k}" for k in ("autoscaling.knative.dev/min-scale",) if k not in template
    ]
    return problems


def test_autoscaling_annotations_are_on_the_revision_template(rendered: list[Obj]) -> None:
    for ksvc in by_kind(rendered, KSVC, "Service").values():
        assert autoscaling_problems(ksvc) == []
        scale = ksvc["spec"]["template"]["metadata"]["annotations"][
            "autoscaling.knative.dev/min-scale"
        ]
        assert scale == ("0" if _component(ksvc) == "part" else "1")
        assert ksvc["spec"]["template"]["spec"]["timeoutSeconds"] > 0
        assert ksvc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_annotations_on_the_service_metadata_are_reported(rendered: list[Obj]) -> None:
    ksvc = dict(by_kind(rendered, KSVC, "Service")["resize"])
    ksvc["metadata"] = {
        **ksvc["metadata"],
        "annotations": {"autoscaling.knative.dev/min-scale": "0"},
    }
    assert autoscaling_problems(ksvc) == ["metadata.annotations.autoscaling.knative.dev/min-scale"]


def _images(node: Any) -> list[str]:
    """Every ``containers[].image`` and ``initContainers[].image`` under ``node``."""
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key in ("containers", "initContainers"):
            found += [c["image"] for c in value]
        found += _images(value)
    return found


def test_every_image_is_pinned(rendered: list[Obj]) -> None:
    images = set(_images(rendered))
    assert "ghcr.io/kpipe/kpipe:0.1.0" in images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name, f"{image} has no tag"
        assert "/" not in tag, f"{image} has no tag"
        assert tag != "latest", image


# Secret keys whose values are names, not secrets (the object-store users).
USER_NAMES = {"MINIO_ACCESS_KEY", "MINIO_ROOT_USER"}


def test_no_secret_value_is_committed(rendered: list[Obj]) -> None:
    for secret in (o for o in rendered if o["kind"] == "Secret"):
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            if key in USER_NAMES:
                assert value.startswith("kpipe-"), (secret["metadata"]["name"], key)
            else:
                assert value == "CHANGE_ME", (secret["metadata"]["name"], key)
    trusted = by_kind(rendered, "v1", "ConfigMap")["kpipe-trusted-keys"]
    assert trusted["data"] == {TRUSTED_KEYS_ENV: "CHANGE_ME"}


@pytest.mark.parametrize(("overlay_name", "gpus"), [("dev", None), ("gpu", 1)])
def test_only_the_gpu_overlay_asks_for_a_gpu(overlay_name: str, gpus: int | None) -> None:
    from kpipe.deploy.render import overlay_dir, render

    triton = next(
        o
        for o in render(overlay_dir(overlay_name))
        if o["metadata"]["name"] == "triton" and o["kind"] == "Deployment"
    )
    container = triton["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"].get("nvidia.com/gpu") == gpus
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert any(
        a.startswith("--model-repository=s3://minio.") and ":9000/models" in a
        for a in container["args"]
    )


# -- who can reach what ---------------------------------------------------------


def test_parts_and_the_event_endpoints_are_cluster_local(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    public = {n for n, s in services.items() if s["metadata"]["labels"].get(VISIBILITY) is None}
    assert public == {PUBLIC}
    for ksvc in services.values():
        # On the Service's own labels, where Knative reads it (not the revision's).
        template = ksvc["spec"]["template"]["metadata"]["labels"]
        assert VISIBILITY not in template
        if ksvc["metadata"]["name"] != PUBLIC:
            assert ksvc["metadata"]["labels"][VISIBILITY] == "cluster-local"


def test_the_public_router_serves_the_api_only(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    assert _env(services[PUBLIC])["KPIPE_ROUTER_SERVES"] == "api"
    assert _env(services[EVENTS])["KPIPE_ROUTER_SERVES"] == "events"
    # The same image and command: one router, two faces.
    public, events = (
        services[n]["spec"]["template"]["spec"]["containers"][0] for n in (PUBLIC, EVENTS)
    )
    assert (public["image"], public["command"], public["args"]) == (
        events["image"],
        events["command"],
        events["args"],
    )
    database = _aliases(RouterSettings)["database_url"]
    assert _env(services[PUBLIC])[database] == _env(services[EVENTS])[database]


def test_only_cluster_local_services_receive_events(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    receivers = {
        t["spec"]["subscriber"]["ref"]["name"]
        for t in by_kind(rendered, EVENTING, "Trigger").values()
    }
    receivers |= {
        h["spec"]["delivery"]["deadLetterSink"]["ref"]["name"]
        for h in [
            *by_kind(rendered, EVENTING, "Trigger").values(),
            *by_kind(rendered, EVENTING, "Broker").values(),
        ]
    }
    for name in receivers:
        assert services[name]["metadata"]["labels"][VISIBILITY] == "cluster-local", name


def test_every_audience_is_its_receivers(rendered: list[Obj]) -> None:
    """A Trigger asks the broker for a token of the audience its receiver checks."""
    services = by_kind(rendered, KSVC, "Service")
    destinations = [
        (t["spec"]["subscriber"], t["metadata"]["name"])
        for t in by_kind(rendered, EVENTING, "Trigger").values()
    ]
    destinations += [
        (h["spec"]["delivery"]["deadLetterSink"], h["metadata"]["name"])
        for h in [
            *by_kind(rendered, EVENTING, "Trigger").values(),
            *by_kind(rendered, EVENTING, "Broker").values(),
        ]
    ]
    audiences = {}
    for destination, holder in destinations:
        name = destination["ref"]["name"]
        assert destination["audience"] == _env(services[name])[OIDC_AUDIENCE], holder
        audiences[destination["audience"]] = name
    # One audience per receiver: a token for one is no good at another.
    assert len(set(audiences.values())) == len(audiences)


def _from_refs(policy: Obj) -> set[tuple[str, str, str]]:
    entries = policy["spec"]["from"]
    assert all(set(e) == {"ref"} for e in entries), (
        "a sub: pattern would admit more than the broker"
    )
    return {(e["ref"]["apiVersion"], e["ref"]["kind"], e["ref"]["name"]) for e in entries}


def test_eventpolicies_let_only_the_brokers_triggers_send(rendered: list[Obj]) -> None:
    """Each receiver's EventPolicy admits exactly the Triggers that deliver to it."""
    triggers = by_kind(rendered, EVENTING, "Trigger")
    senders: dict[str, set[tuple[str, str, str]]] = {}
    for name, trigger in triggers.items():
        ident = (EVENTING, "Trigger", name)
        senders.setdefault(trigger["spec"]["subscriber"]["ref"]["name"], set()).add(ident)
        senders.setdefault(trigger["spec"]["delivery"]["deadLetterSink"]["ref"]["name"], set()).add(
            ident
        )
    # Knative admits what any of a receiver's policies admits: compare the union.
    policies = by_kind(rendered, EVENT_POLICY, "EventPolicy").values()
    admitted: dict[str, set[tuple[str, str, str]]] = {}
    for policy in policies:
        for target in policy["spec"]["to"]:
            assert (target["ref"]["apiVersion"], target["ref"]["kind"]) == (KSVC, "Service")
            admitted.setdefault(target["ref"]["name"], set()).update(_from_refs(policy))
    assert admitted == senders


def test_a_parts_eventpolicy_admits_only_step_requests(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    for policy in by_kind(rendered, EVENT_POLICY, "EventPolicy").values():
        [target] = policy["spec"]["to"]
        if _component(services[target["ref"]["name"]]) == "part":
            assert policy["spec"]["filters"] == [
                {"exact": {"type": EventType.STEP_REQUESTED.value}}
            ]


# -- what each workload holds --------------------------------------------------


def _pod_specs(objs: list[Obj]) -> dict[str, Obj]:
    """Every workload's pod spec, by ``kind/name``."""
    kinds = {"Service": KSVC, "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objs
        if kinds.get(o["kind"]) == o["apiVersion"]
    }


def _secrets_of(spec: Obj) -> set[str]:
    """Every Secret a pod spec can read: env, envFrom and volumes."""
    names = set()
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        names |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


def _parts_secrets(part_service: str) -> set[str]:
    """A part reads the parts' store user and its own signing key, no other part's."""
    return {"kpipe-parts-store", f"kpipe-part-{part_service}-signing"}


STORE_SECRETS = {"kpipe-parts-store", "kpipe-router-store", "kpipe-api-store", "kpipe-triton-store"}
# Each workload and every Secret it may read; nothing else may read any Secret.
SECRETS_OF = {
    "Service/router": {"kpipe-api-store", "kpipe-router-signing", "kpipe-postgres", "kpipe-api"},
    "Service/router-events": {"kpipe-router-store", "kpipe-router-signing", "kpipe-postgres"},
    "Service/adapter": {"kpipe-adapter-signing", "kpipe-webhook"},
    "Deployment/triton": {"kpipe-triton-store"},
    "StatefulSet/minio": {"kpipe-minio-root", "kpipe-webhook"},
    "StatefulSet/postgres": {"kpipe-postgres"},
    "Job/minio-setup": {"kpipe-minio-root"} | STORE_SECRETS,
}


def test_each_workload_reads_only_its_roles_secrets(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service")
    for workload, spec in _pod_specs(rendered).items():
        kind, _, name = workload.partition("/")
        if kind == "Service" and _component(services[name]) == "part":
            expected = _parts_secrets(name)
        else:
            expected = SECRETS_OF[workload]
        assert _secrets_of(spec) == expected, workload


def test_only_minio_and_its_setup_job_hold_the_root_keys(rendered: list[Obj]) -> None:
    holders = {
        w for w, spec in _pod_specs(rendered).items() if "kpipe-minio-root" in _secrets_of(spec)
    }
    assert holders == {"StatefulSet/minio", "Job/minio-setup"}


def test_every_secret_is_read_by_someone(rendered: list[Obj]) -> None:
    read = set().union(*(_secrets_of(s) for s in _pod_specs(rendered).values()))
    assert set(by_kind(rendered, "v1", "Secret")) == read


def test_every_signer_and_receiver_gets_the_trusted_keys(rendered: list[Obj]) -> None:
    for ksvc in by_kind(rendered, KSVC, "Service").values():
        env_from = ksvc["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "kpipe-trusted-keys"}} in env_from, ksvc["metadata"][
            "name"
        ]


def test_the_setup_job_mounts_the_policies_it_creates(rendered: list[Obj]) -> None:
    spec = _pod_specs(rendered)["Job/minio-setup"]
    [volume] = spec["volumes"]
    assert volume["configMap"]["name"] == "kpipe-minio-policies"
    policies = by_kind(rendered, "v1", "ConfigMap")["kpipe-minio-policies"]
    script = spec["containers"][0]["args"][0]
    for role in (name.removesuffix(".json") for name in policies["data"]):
        assert f'user {role} "${role.upper()}_ACCESS_KEY" "${role.upper()}_SECRET_KEY"' in script


def test_one_signing_secret_per_principal_named_for_it(rendered: list[Obj]) -> None:
    """router, adapter and part/<function> for each part: each its own Secret, named for it."""
    principals = {
        name: s["metadata"]["annotations"][PRINCIPAL_ANNOTATION]
        for name, s in by_kind(rendered, "v1", "Secret").items()
        if PRINCIPAL_ANNOTATION in s["metadata"].get("annotations", {})
    }
    assert sorted(principals.values()) == sorted(
        ["router", "adapter", *(part_principal(f) for f in default_catalog().names())]
    )
    assert all(signing_secret_name(p) == name for name, p in principals.items())
    assert all(name.endswith("-signing") for name in principals)
