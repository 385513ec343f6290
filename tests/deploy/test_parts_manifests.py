"""parts.yaml is generated from the catalogue: adding a part is one declaration."""

from __future__ import annotations

from functions.catalog import Catalog, default_catalog
from kpipe.deploy.keys import PRINCIPAL_ANNOTATION
from kpipe.deploy.parts import PARTS_YAML, part_objects, parts_yaml, service_name


def test_parts_yaml_is_what_the_catalogue_generates() -> None:
    assert PARTS_YAML.read_text(encoding="utf-8") == parts_yaml(), (
        "deploy/knative/base/parts.yaml is stale: run `python -m kpipe.deploy.parts`"
    )


def test_a_new_part_gets_a_service_a_trigger_and_a_policy() -> None:
    modules = {"resize": "functions.parts.resize", "detect_text": "functions.parts.text"}
    objs = part_objects(Catalog(modules))
    names = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert names == [
        ("Secret", "kpipe-part-resize-signing"),
        ("Service", "resize"),
        ("Trigger", "part-resize"),
        ("EventPolicy", "part-resize"),
        ("Secret", "kpipe-part-detect-text-signing"),
        ("Service", "detect-text"),
        ("Trigger", "part-detect-text"),
        ("EventPolicy", "part-detect-text"),
        ("EventPolicy", "router-dead-letters"),
    ]
    dead_letters = objs[-1]["spec"]["from"]
    assert [f["ref"]["name"] for f in dead_letters] == ["part-resize", "part-detect-text"]


def test_each_part_reads_only_its_own_signing_secret() -> None:
    modules = {"resize": "functions.parts.resize", "detect_text": "functions.parts.text"}
    objs = part_objects(Catalog(modules))
    secrets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
    assert secrets["kpipe-part-detect-text-signing"]["metadata"]["annotations"] == {
        PRINCIPAL_ANNOTATION: "part/detect_text"
    }
    for service in (o for o in objs if o["kind"] == "Service"):
        env_from = service["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        signing = [e["secretRef"]["name"] for e in env_from if "secretRef" in e]
        name = service["metadata"]["name"]
        assert signing == ["kpipe-parts-store", f"kpipe-part-{name}-signing"], name


def test_parts_on_triton_get_the_inference_profile() -> None:
    catalog = default_catalog()
    services = {o["metadata"]["name"]: o for o in part_objects() if o["kind"] == "Service"}
    for part in catalog.names():
        spec = services[service_name(part)]["spec"]["template"]
        target = spec["metadata"]["annotations"]["autoscaling.knative.dev/target"]
        limits = spec["spec"]["containers"][0]["resources"]["limits"]
        if catalog.get(part).uses_inference:
            assert (target, limits["memory"]) == ("4", "2Gi"), part
        else:
            assert (target, limits["memory"]) == ("8", "1Gi"), part
