"""Validating Knative objects against the real CRD schemas in ../shared/knative-crds.

``jsonschema`` checks types and required fields, but a property that is not in
a structural schema passes it silently, and the API server then prunes it (an
annotation under ``spec.template`` instead of ``spec.template.metadata``, a
typo'd field): the object is accepted and does not do what it says.
:func:`unknown_fields` walks the object beside the schema and reports each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# (apiVersion, kind) -> CRD file under knative-crds/.
CRD_FILES = {
    ("serving.knative.dev/v1", "Service"): "serving/service.yaml",
    ("eventing.knative.dev/v1", "Broker"): "eventing/broker.yaml",
    ("eventing.knative.dev/v1", "Trigger"): "eventing/trigger.yaml",
    ("sources.knative.dev/v1", "SinkBinding"): "eventing/sinkbindings.yaml",
    ("eventing.knative.dev/v1alpha1", "EventPolicy"): "eventing/eventpolicy.yaml",
}
_ROOT_FIELDS = {"apiVersion", "kind", "metadata"}  # ObjectMeta: checked by the API server itself


@dataclass(frozen=True)
class UnknownField:
    """A property the schema does not declare; ``pruned``: the API server drops it."""

    path: str
    pruned: bool


def load_schema(crds_dir: Path, api_version: str, kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the CRD version an object's apiVersion names."""
    crd = _load_crd(crds_dir / CRD_FILES[(api_version, kind)])
    version = api_version.rpartition("/")[2]
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    schema: dict[str, Any] = served[version]["schema"]["openAPIV3Schema"]
    return schema


@cache
def _load_crd(path: Path) -> Any:
    # The serving CRDs are large; parse each once per session (callers do not mutate them).
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every jsonschema violation, as ``path: message``."""
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in validator.iter_errors(obj)
    ]


def unknown_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[UnknownField]:
    """Properties of ``obj`` that ``schema`` does not declare, recursively."""
    found: list[UnknownField] = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            if not path and key in _ROOT_FIELDS:
                continue
            if props is not None and key in props:
                found += unknown_fields(value, props[key], child)
            elif isinstance(extra, dict):
                found += unknown_fields(value, extra, child)
            elif extra is True or (preserve and props is None):
                continue  # a free-form map
            else:
                # Not declared: pruned, or (under preserve-unknown-fields) kept
                # by the API server but unknown to Knative's strict decoding.
                found.append(UnknownField(child, pruned=not preserve))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found
