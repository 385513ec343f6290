"""The workout that makes every part work while memory is sampled: which parts, how."""

from __future__ import annotations

import pytest

from bench.figures._every_part import workout_specs
from functions.catalog import DEFAULT_MODULES, default_catalog
from router.validation import validate_spec

TODAY = list(DEFAULT_MODULES)


def _functions(parts: list[str]) -> list[list[str]]:
    specs, _, _ = workout_specs(parts)
    return [[s["function"] for s in spec["steps"]] for spec in specs]


@pytest.mark.parametrize(
    "parts",
    [TODAY, [p for p in TODAY if p != "read_text"]],
    ids=["today", "without-read_text"],
)
def test_the_workout_is_valid_pipelines_that_use_every_part(parts: list[str]) -> None:
    specs, direct, left = workout_specs(parts)
    catalog = default_catalog()
    for spec in specs:
        validate_spec(spec, catalog)
    routed = {f for functions in _functions(parts) for f in functions}
    # Every part is exercised: through a pipeline, or asked directly.
    assert routed | set(direct) == set(parts)
    assert direct == ["detect_objects"]
    assert left == []


def test_one_upload_starts_every_workout_pipeline() -> None:
    specs, _, _ = workout_specs(TODAY)
    assert len({s["name"] for s in specs}) == len(specs) == 5
    assert {tuple(sorted(s["trigger"].items())) for s in specs} == {
        (("bucket", "uploads"), ("prefix", "bench-every-part/"), ("suffix", ".jpg"))
    }


@pytest.mark.parametrize(
    ("parts", "routed", "left"),
    [
        # read_text reads the boxes detect_text found; blur and annotate use them too.
        (
            ["resize", "detect_text", "read_text", "blur", "annotate", "convert"],
            [
                ["resize"],
                ["resize"],
                ["resize", "detect_text", "read_text"],
                ["resize", "detect_text", "blur", "annotate"],
                ["convert"],
            ],
            [],
        ),
        # Without its parent's part a step cannot run: the part is not exercised.
        (["resize", "read_text", "blur"], [["resize"]] * 4, ["read_text", "blur"]),
        # A part the workout does not know is reported, not guessed at.
        (["convert", "sharpen"], [["convert"]], ["sharpen"]),
    ],
)
def test_the_workout_follows_the_catalogue(
    parts: list[str], routed: list[list[str]], left: list[str]
) -> None:
    _, _, not_exercised = workout_specs(parts)
    assert _functions(parts) == routed
    assert not_exercised == left
