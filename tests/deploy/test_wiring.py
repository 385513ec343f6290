"""Cross-references: every part, trigger, sink, env var and image is wired as the code expects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from eventing.adapter import main as adapter_main
from eventing.contract import EXT_FUNCTION, ROUTER_EVENT_TYPES, EventType
from functions.catalog import default_catalog
from kpipe import settings as kpipe_settings
from kpipe.settings import EventSettings, InferenceSettings, ObjectStoreSettings
from router.settings import RouterSettings
from tests.deploy.conftest import by_kind

KSVC = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"
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
PART_ENV = _local_only(ObjectStoreSettings) | _local_only(InferenceSettings)
REQUIRED_ENV: dict[str, set[str]] = {
    "part": PART_ENV,
    # PostgreSQL instead of the SQLite file, and an API that is not open to all.
    "router": PART_ENV
    | {_aliases(RouterSettings)[f] for f in ("database_url", "api_token")}
    | {SINK},
    "adapter": {SINK, WEBHOOK_TOKEN},
}


def _component(ksvc: Obj) -> str:
    return str(ksvc["metadata"]["labels"]["app.kubernetes.io/component"])


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


def test_the_router_gets_its_event_types_on_events(rendered: list[Obj]) -> None:
    triggers = by_kind(rendered, EVENTING, "Trigger").values()
    to_router = {
        t["spec"]["filter"]["attributes"]["type"]
        for t in triggers
        if t["spec"]["subscriber"]["ref"]["name"] == "router"
        and t["spec"]["subscriber"]["uri"] == "/events"
    }
    assert to_router == {t.value for t in ROUTER_EVENT_TYPES}


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
        assert delivery["deadLetterSink"]["ref"]["name"] == "router"
        assert delivery["deadLetterSink"]["uri"] == "/dead-letters"
        assert delivery["backoffPolicy"] == "exponential"
        assert delivery["retry"] >= 1


def test_every_container_gets_the_env_the_code_needs(rendered: list[Obj]) -> None:
    services = by_kind(rendered, KSVC, "Service").values()
    assert {_component(s) for s in services} == set(REQUIRED_ENV)
    for ksvc in services:
        missing = REQUIRED_ENV[_component(ksvc)] - _env_names(rendered, ksvc)
        assert not missing, f"{ksvc['metadata']['name']} lacks {sorted(missing)}"


def test_the_configmap_only_names_env_vars_the_code_reads(rendered: list[Obj]) -> None:
    known = {"PYTHONUNBUFFERED"}
    for value in vars(kpipe_settings).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
        ):
            known |= set(_aliases(value).values())
    config = next(o for o in rendered if o["kind"] == "ConfigMap")
    assert set(config["data"]) - known == set()


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


def test_no_secret_value_is_committed(rendered: list[Obj]) -> None:
    for secret in (o for o in rendered if o["kind"] == "Secret"):
        assert "data" not in secret
        values = set(secret["stringData"].values())
        assert values <= {"CHANGE_ME", "kpipe"}, secret["metadata"]["name"]


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
