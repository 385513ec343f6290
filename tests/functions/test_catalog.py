"""The catalogue: names, lazy lookup, descriptions for the REST API."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import functions.parts
from functions.catalog import DEFAULT_MODULES, Catalog, UnknownFunction, default_catalog
from functions.errors import StepError

# Adding a part is one declaration (its module and its line in DEFAULT_MODULES):
# these tests take the names from the catalogue, never from a list of their own.
NAMES = default_catalog().names()


def test_every_part_is_a_function_target_of_main() -> None:
    main = importlib.import_module("functions.main")
    for name in NAMES:
        assert callable(getattr(main, name)), name


def test_every_part_module_is_in_the_catalogue() -> None:
    modules = {
        f"functions.parts.{m.name}"
        for m in pkgutil.iter_modules(functions.parts.__path__)
        if not m.name.startswith("_")
    }
    assert set(DEFAULT_MODULES.values()) == modules


def test_unknown_function() -> None:
    with pytest.raises(UnknownFunction) as caught:
        Catalog().get("sharpen")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, StepError)
    assert caught.value.code == "unknown_function"
    assert str(caught.value).startswith("unknown function 'sharpen'")


@pytest.mark.parametrize("name", NAMES)
def test_describe_each_part(name: str) -> None:
    (entry,) = [e for e in default_catalog().describe() if e["name"] == name]
    assert set(entry) == {
        "name",
        "group",
        "summary",
        "params",
        "input",
        "output",
        "labels",
        "uses_inference",
    }
    assert entry["group"] in {"pre-processing", "ai", "post-processing"}
    assert entry["input"] == "image"
    assert entry["output"] in {"image", "detections"}
    assert entry["summary"]
    assert entry["params"]["type"] == "object"
    json.dumps(entry)  # JSON-ready as is


PARAMS = [
    (name, field) for name in NAMES for field in default_catalog().get(name).schema()["properties"]
]


@pytest.mark.parametrize(("name", "field"), PARAMS)
def test_every_param_is_documented(name: str, field: str) -> None:
    # The web page builds its form from these schemas.
    schema = default_catalog().get(name).schema()["properties"][field]
    assert schema.get("description")


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ({"resize": "functions.errors"}, "exports no PART"),
        ({"convert": "functions.parts.resize"}, "named 'resize'"),
    ],
    ids=["no-part", "wrong-name"],
)
def test_broken_entries_fail_loudly(modules: dict[str, str], message: str) -> None:
    name = next(iter(modules))
    with pytest.raises(ImportError, match=message):
        Catalog(modules).get(name)


def test_validating_params_loads_neither_opencv_nor_onnx() -> None:
    # The router validates pipelines with the catalogue; it must stay light.
    script = (
        "import sys\n"
        "from functions.catalog import default_catalog\n"
        "catalog = default_catalog()\n"
        "for name in catalog.names():\n"
        "    catalog.get(name).schema()\n"
        "catalog.get('resize').parse_params({'max_side': 64})\n"
        "catalog.get('blur_faces').parse_params({'strength': 50})\n"
        "catalog.get('read_text').parse_params({'min_confidence': 0.8})\n"
        "print(sorted(m for m in ('cv2', 'onnxruntime', 'tritonclient') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
