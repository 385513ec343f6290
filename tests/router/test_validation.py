from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from functions.catalog import Catalog
from router.errors import SpecInvalid
from router.spec import PipelineSpec
from router.validation import find_problems, validate_spec


def test_the_readme_spec_is_valid(spec_data: dict[str, Any], catalog: Catalog) -> None:
    assert validate_spec(spec_data, catalog).name == "privacy-blur"


def _problems(
    data: dict[str, Any], catalog: Catalog, registered: Sequence[PipelineSpec] = ()
) -> dict[str, str]:
    _, problems = find_problems(data, catalog, registered)
    return {p.path: p.message for p in problems}


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda d: d["steps"][1].update(function="nope"), "steps[1].function", "unknown function"),
        (lambda d: d["steps"][0].update(params={"max_side": -5}), "steps[0].params.max_side", ""),
        (lambda d: d["steps"][0].update(params={"bogus": 1}), "steps[0].params.bogus", ""),
        (lambda d: d["steps"][2].update(id="small"), "steps[2].id", "duplicate step id"),
        (lambda d: d["steps"][2].update(after=["ghost"]), "steps[2].after[0]", "no step has id"),
        (lambda d: d["steps"][2].update(after=["blur"]), "steps[2].after[0]", "itself"),
        (lambda d: d["steps"][0].update(after=["blur"]), "steps[0].after", "cycle"),
        (lambda d: d["steps"][2].update(after=["faces", "faces"]), "steps[2].after", "twice"),
        (lambda d: d["steps"][2].update(when=["faces.count >"]), "steps[2].when[0]", "value"),
        (
            lambda d: d["steps"][1].update(when=["blur.count > 0"]),
            "steps[1].when[0]",
            "not a step this one waits for",
        ),
        (
            lambda d: d["output"].update(bucket="uploads"),
            "output.bucket",
            "trigger this pipeline again",
        ),
    ],
)
def test_each_problem_names_its_field(
    spec_data: dict[str, Any], catalog: Catalog, change: Any, path: str, message: str
) -> None:
    change(spec_data)
    problems = _problems(spec_data, catalog)
    assert path in problems, problems
    assert message in problems[path]
    with pytest.raises(SpecInvalid):
        validate_spec(spec_data, catalog)


def test_every_problem_is_reported(spec_data: dict[str, Any], catalog: Catalog) -> None:
    spec_data["steps"][0]["function"] = "nope"
    spec_data["steps"][1]["after"] = ["ghost"]
    spec_data["steps"][2]["params"] = {"strength": 1000}
    problems = _problems(spec_data, catalog)
    assert {"steps[0].function", "steps[1].after[0]", "steps[2].params.strength"} <= set(problems)


def test_same_bucket_is_fine_when_the_prefix_excludes_outputs(
    spec_data: dict[str, Any], catalog: Catalog
) -> None:
    spec_data["output"]["bucket"] = "uploads"
    spec_data["trigger"]["prefix"] = "incoming/"
    assert _problems(spec_data, catalog) == {}


def test_fan_out_and_fan_in_validate(catalog: Catalog) -> None:
    data = {
        "name": "fan",
        "trigger": {"bucket": "uploads"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "small", "function": "resize", "params": {"max_side": 256}},
            {"id": "faces", "function": "detect_faces", "after": ["small"]},
            {"id": "png", "function": "convert", "after": ["small"], "params": {"format": "png"}},
            {"id": "join", "function": "annotate", "after": ["faces", "png"]},
        ],
    }
    spec = validate_spec(data, catalog)
    assert spec.terminal_steps == ("join",)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["steps"][0].update(fuse=True),  # no parent
        lambda d: d["steps"][2].update(fuse=True, when=["faces.count > 0"]),
    ],
)
def test_fuse_needs_a_single_parent_and_no_condition(
    spec_data: dict[str, Any], catalog: Catalog, change: Any
) -> None:
    change(spec_data)
    problems = _problems(spec_data, catalog)
    assert any(path.endswith(".fuse") for path in problems), problems


def test_fused_groups_follow_single_parent_chains(catalog: Catalog) -> None:
    data = {
        "name": "fan",
        "fuse": True,
        "trigger": {"bucket": "uploads"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "a", "function": "resize", "params": {"max_side": 256}},
            {"id": "b", "function": "detect_faces", "after": ["a"]},
            {"id": "c", "function": "convert", "after": ["a"], "params": {"format": "png"}},
            {"id": "d", "function": "annotate", "after": ["b", "c"]},
            {"id": "e", "function": "blur", "after": ["d"]},
        ],
    }
    spec = validate_spec(data, catalog)
    assert spec.groups == {
        "a": ("a",),
        "b": ("b",),
        "c": ("c",),
        "d": ("d", "e"),
        "e": ("d", "e"),
    }


def _chain(name: str, reads: tuple[str, str], writes: str) -> dict[str, Any]:
    """A one-step pipeline over ``reads`` (bucket, prefix) that writes to bucket ``writes``."""
    return {
        "name": name,
        "trigger": {"bucket": reads[0], "prefix": reads[1]},
        "output": {"bucket": writes},
        "steps": [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
    }


@pytest.mark.parametrize(
    ("registered", "expected"),
    [
        # thumbs writes processed/thumbs/..., which back reads and writes to uploads/back/...
        ([_chain("back", ("processed", "thumbs/"), "uploads")], "thumbs -> back -> thumbs"),
        # the same, through a third bucket and pipeline
        (
            [
                _chain("two", ("processed", ""), "archive"),
                _chain("three", ("archive", "two/"), "uploads"),
            ],
            "thumbs -> two -> three -> thumbs",
        ),
    ],
    ids=["two-pipelines", "three-pipelines"],
)
def test_a_loop_through_registered_pipelines_is_refused(
    catalog: Catalog, registered: list[dict[str, Any]], expected: str
) -> None:
    specs = [validate_spec(data, catalog) for data in registered]
    thumbs = _chain("thumbs", ("uploads", ""), "processed")
    problems = _problems(thumbs, catalog, specs)
    assert list(problems) == ["output.bucket"]
    assert expected in problems["output.bucket"]


@pytest.mark.parametrize(
    ("registered", "thumbs_prefix"),
    [
        # a chain that ends: thumbs -> small-thumbs, whose outputs nobody reads
        ([_chain("small-thumbs", ("processed", "thumbs/"), "archive")], ""),
        # back reads processed/other/, not what thumbs writes
        ([_chain("back", ("processed", "other/"), "uploads")], ""),
        # back writes uploads/back/..., which thumbs (reading uploads/in/) does not see
        ([_chain("back", ("processed", "thumbs/"), "uploads")], "in/"),
    ],
    ids=["chain", "other-prefix", "excluded-return"],
)
def test_chains_without_a_loop_are_fine(
    catalog: Catalog, registered: list[dict[str, Any]], thumbs_prefix: str
) -> None:
    specs = [validate_spec(data, catalog) for data in registered]
    thumbs = _chain("thumbs", ("uploads", thumbs_prefix), "processed")
    assert _problems(thumbs, catalog, specs) == {}
