"""Every rendered object validates: Knative kinds against the real CRDs, core kinds offline."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kpipe.deploy.render import overlay_dir, render
from kpipe.deploy.subjects import with_oidc_subjects
from tests.deploy.conftest import OVERLAY_NAMES
from tests.deploy.crds import CRD_FILES, UnknownField, load_schema, schema_errors, unknown_fields

# The Kubernetes version the core kinds are validated against (K3s stable at the time).
KUBERNETES_VERSION = "1.33.0"


def _objects() -> list[Any]:
    params = []
    for name in OVERLAY_NAMES:
        namespace = "kpipe-test" if name == "base" else None
        for obj in with_oidc_subjects(render(overlay_dir(name), namespace=namespace)):
            ident = f"{name}-{obj['kind']}-{obj['metadata']['name']}"
            params.append(pytest.param(obj, id=ident))
    return params


OBJECTS = _objects()
KNATIVE = [p for p in OBJECTS if (p.values[0]["apiVersion"], p.values[0]["kind"]) in CRD_FILES]
CORE = [p for p in OBJECTS if (p.values[0]["apiVersion"], p.values[0]["kind"]) not in CRD_FILES]


@pytest.mark.parametrize("obj", KNATIVE)
def test_knative_object_matches_its_crd(obj: dict[str, Any], crds_dir: Path) -> None:
    schema = load_schema(crds_dir, obj["apiVersion"], obj["kind"])
    assert schema_errors(obj, schema) == []
    assert unknown_fields(obj, schema) == []


@pytest.mark.parametrize("obj", CORE)
def test_core_object_matches_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    # strict: additionalProperties false, so a typo'd field fails here too.
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_kind_is_validated() -> None:
    kinds = {(p.values[0]["apiVersion"], p.values[0]["kind"]) for p in OBJECTS}
    assert set(CRD_FILES) <= kinds
    assert len(KNATIVE) + len(CORE) == len(OBJECTS)


def _first(kind: str, name: str) -> dict[str, Any]:
    objs = render(overlay_dir("dev"))
    return copy.deepcopy(
        next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
    )


def _typo_container_field(o: dict[str, Any]) -> None:
    o["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _annotations_on_template(o: dict[str, Any]) -> None:
    o["spec"]["template"]["annotations"] = {"autoscaling.knative.dev/min-scale": "0"}


def _typo_trigger_filter(o: dict[str, Any]) -> None:
    o["spec"]["filtr"] = o["spec"].pop("filter")


def _typo_delivery_field(o: dict[str, Any]) -> None:
    o["spec"]["delivery"]["deadLetterSinks"] = o["spec"]["delivery"].pop("deadLetterSink")


def _typo_subscriber_audience(o: dict[str, Any]) -> None:
    o["spec"]["subscriber"]["audiance"] = o["spec"]["subscriber"].pop("audience")


def _typo_eventpolicy_from(o: dict[str, Any]) -> None:
    o["spec"]["form"] = o["spec"].pop("from")


def _eventpolicy_ref_misplaced(o: dict[str, Any]) -> None:
    o["spec"]["from"][0]["name"] = o["spec"]["from"][0]["ref"].pop("name")


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "expected"),
    [
        pytest.param(
            "Service",
            "resize",
            _typo_container_field,
            UnknownField("spec.template.spec.containers[0].imagePullPolicyy", pruned=True),
            id="ksvc-container-typo",
        ),
        pytest.param(
            "Service",
            "resize",
            _annotations_on_template,
            UnknownField("spec.template.annotations", pruned=True),
            id="ksvc-annotations-misplaced",
        ),
        pytest.param(
            "Trigger",
            "part-resize",
            _typo_trigger_filter,
            UnknownField("spec.filtr", pruned=False),
            id="trigger-filter-typo",
        ),
        pytest.param(
            "Broker",
            "default",
            _typo_delivery_field,
            UnknownField("spec.delivery.deadLetterSinks", pruned=False),
            id="broker-delivery-typo",
        ),
        pytest.param(
            "Trigger",
            "part-resize",
            _typo_subscriber_audience,
            UnknownField("spec.subscriber.audiance", pruned=True),
            id="trigger-audience-typo",
        ),
        pytest.param(
            "EventPolicy",
            "part-resize",
            _typo_eventpolicy_from,
            UnknownField("spec.form", pruned=True),
            id="eventpolicy-from-typo",
        ),
        pytest.param(
            "EventPolicy",
            "router-events",
            _eventpolicy_ref_misplaced,
            UnknownField("spec.from[0].name", pruned=True),
            id="eventpolicy-name-outside-ref",
        ),
    ],
)
def test_unknown_fields_are_caught(
    kind: str,
    name: str,
    mutate: Callable[[dict[str, Any]], None],
    expected: UnknownField,
    crds_dir: Path,
) -> None:
    obj = _first(kind, name)
    schema = load_schema(crds_dir, obj["apiVersion"], obj["kind"])
    mutate(obj)
    # jsonschema alone accepts every one of these.
    assert schema_errors(obj, schema) == []
    assert unknown_fields(obj, schema) == [expected]


def test_trigger_filters_of_the_wrong_shape_fail_the_schema(crds_dir: Path) -> None:
    obj = _first("Trigger", "part-resize")
    obj["spec"]["filters"] = obj["spec"].pop("filter")  # filters is a list of dialects
    schema = load_schema(crds_dir, obj["apiVersion"], obj["kind"])
    assert any(e.startswith("spec.filters:") for e in schema_errors(obj, schema))


def test_a_typo_in_a_core_kind_fails_strict_validation() -> None:
    obj = _first("Deployment", "triton")
    obj["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
