from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from router.errors import SpecInvalid
from router.spec import json_path, parse_spec, spec_from_data


@pytest.mark.parametrize("dump", [json.dumps, yaml.safe_dump], ids=["json", "yaml"])
def test_parse_json_and_yaml(spec_data: dict[str, Any], dump: Any) -> None:
    spec = parse_spec(dump(spec_data))
    assert spec.name == "privacy-blur"
    assert [s.id for s in spec.steps] == ["small", "faces", "blur"]
    assert spec.terminal_steps == ("blur",)
    assert spec.dependents["small"] == ("faces",)
    assert spec.ancestors("blur") == ["faces", "small"]


def test_when_accepts_one_string(spec_data: dict[str, Any]) -> None:
    spec_data["steps"][2]["when"] = "faces.count > 0"
    assert spec_from_data(spec_data).steps[2].when == ("faces.count > 0",)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d.pop("trigger"), "trigger"),
        (lambda d: d.update(name="Not_A_Name"), "name"),
        (lambda d: d["trigger"].update(bucket="UP"), "trigger.bucket"),
        (lambda d: d.update(steps=[]), "steps"),
        (lambda d: d["steps"][1].update(id="9bad"), "steps[1].id"),
        (lambda d: d["steps"][2].update(after="faces"), "steps[2].after"),
        (lambda d: d.update(colour="red"), "colour"),
    ],
)
def test_schema_problems_name_the_field(spec_data: dict[str, Any], change: Any, path: str) -> None:
    change(spec_data)
    with pytest.raises(SpecInvalid) as info:
        spec_from_data(spec_data)
    assert path in [p.path for p in info.value.problems]


@pytest.mark.parametrize("text", ["name: [unclosed", "{'a': 1", "\t- x: y"])
def test_unparseable_documents(text: str) -> None:
    with pytest.raises(SpecInvalid, match="not valid YAML or JSON"):
        parse_spec(text)


@pytest.mark.parametrize("text", ["just a string", "[1, 2]", "42"])
def test_documents_that_are_not_mappings(text: str) -> None:
    with pytest.raises(SpecInvalid, match="must be a mapping"):
        parse_spec(text)


def test_json_path() -> None:
    assert json_path(("steps", 1, "after", 0)) == "steps[1].after[0]"
    assert json_path(()) == "$"


@pytest.mark.parametrize(
    ("bucket", "key", "expected"),
    [
        ("uploads", "a.jpg", True),
        ("uploads", "a.png", False),
        ("other", "a.jpg", False),
    ],
)
def test_trigger_matches(spec_data: dict[str, Any], bucket: str, key: str, expected: bool) -> None:
    assert spec_from_data(spec_data).trigger.matches(bucket, key) is expected
