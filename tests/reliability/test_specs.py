"""Every kind of invalid spec gets a 422 from the API naming the offending field."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.catalog import Catalog
from tests.reliability._apps import router_client

Spec = dict[str, Any]


def _base() -> Spec:
    return {
        "name": "p",
        "trigger": {"bucket": "uploads", "prefix": "in/"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "a", "function": "resize", "params": {"width": 8}},
            {"id": "b", "function": "detect_faces", "after": ["a"]},
        ],
    }


def _change(edit: Callable[[Spec], None]) -> Spec:
    spec = copy.deepcopy(_base())
    edit(spec)
    return spec


# case -> (spec, the field of the first problem)
INVALID: dict[str, tuple[Any, str]] = {
    "not-a-mapping": (["a list"], "$"),
    "no-steps": (_change(lambda s: s.update(steps=[])), "steps"),
    "bad-name": (_change(lambda s: s.update(name="Bad Name!")), "name"),
    "unknown-top-level-field": (_change(lambda s: s.update(extra=1)), "extra"),
    "no-trigger": (_change(lambda s: s.pop("trigger")), "trigger"),
    "bad-bucket": (_change(lambda s: s["trigger"].update(bucket="UP")), "trigger.bucket"),
    "unknown-function": (
        _change(lambda s: s["steps"][0].update(function="nope")),
        "steps[0].function",
    ),
    "bad-params": (
        _change(lambda s: s["steps"][0].update(params={"width": -1})),
        "steps[0].params.width",
    ),
    "unknown-param": (
        _change(lambda s: s["steps"][0]["params"].update(colour="red")),
        "steps[0].params.colour",
    ),
    "bad-step-id": (_change(lambda s: s["steps"][0].update(id="A B")), "steps[0].id"),
    "duplicate-ids": (_change(lambda s: s["steps"][1].update(id="a")), "steps[1].id"),
    "dangling-after": (_change(lambda s: s["steps"][1].update(after=["z"])), "steps[1].after[0]"),
    "self-after": (_change(lambda s: s["steps"][1].update(after=["b"])), "steps[1].after[0]"),
    "after-twice": (_change(lambda s: s["steps"][1].update(after=["a", "a"])), "steps[1].after"),
    "cycle": (_change(lambda s: s["steps"][0].update(after=["b"])), "steps[0].after"),
    "bad-condition": (
        _change(lambda s: s["steps"][1].update(when="a.count >>> 1")),
        "steps[1].when[0]",
    ),
    "condition-on-a-later-step": (
        _change(lambda s: s["steps"][0].update(when="b.count > 0")),
        "steps[0].when[0]",
    ),
    "fuse-without-parent": (_change(lambda s: s["steps"][0].update(fuse=True)), "steps[0].fuse"),
    # processed is the parts' output bucket: a trigger there would see the outputs.
    "trigger-on-the-output-bucket": (
        _change(lambda s: s.update(trigger={"bucket": "processed"})),
        "trigger.bucket",
    ),
    "too-many-steps": (
        _change(lambda s: s.update(steps=[{"id": f"s{i}", "function": "blur"} for i in range(65)])),
        "steps",
    ),
}


@pytest.fixture
def client(tmp_path: Path, catalog: Catalog) -> Iterator[TestClient]:
    with router_client(tmp_path, catalog) as c:
        yield c


def test_the_base_spec_is_valid(client: TestClient) -> None:
    assert client.put("/v1/pipelines/p", json=_base()).status_code == 200


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_specs_get_422_naming_the_field(client: TestClient, case: str) -> None:
    spec, field = INVALID[case]
    response = client.put("/v1/pipelines/p", json=spec)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid_spec"
    assert field in [p["field"] for p in body["problems"]], body["problems"]
    checked = client.post("/v1/pipelines/validate", json=spec).json()
    assert checked["valid"] is False
    assert client.get("/v1/pipelines/p").status_code == 404  # nothing was saved


@pytest.mark.parametrize(
    "body", [b"{", b"key: [unclosed", b"\xff\xfe", b"", b"null", b"42"], ids=repr
)
def test_unparseable_spec_documents_get_422(client: TestClient, body: bytes) -> None:
    response = client.put("/v1/pipelines/p", content=body)
    assert response.status_code == 422, response.text
