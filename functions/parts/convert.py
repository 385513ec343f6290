"""convert: change the format (and quality) the picture is written in.

The pixels are untouched; the step SDK encodes the output in the new format
and gives the output object the matching extension.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from functions.part import Group, Params, Part, PartResult, Picture, StepContext


class ConvertParams(Params):
    """The output format."""

    format: Literal["jpeg", "png", "webp"] = Field(description="Format to write the image in.")
    quality: int = Field(
        90, ge=1, le=100, description="JPEG/WebP quality; ignored for PNG (lossless)."
    )


def _run(pictures: list[Picture], params: ConvertParams, context: StepContext) -> PartResult:
    picture = replace(pictures[0], format=params.format, quality=params.quality)
    return PartResult(picture, {"format": params.format, "quality": params.quality})


PART = Part(
    name="convert",
    group=Group.PRE,
    summary="Change the image format (JPEG, PNG or WebP) and quality.",
    params=ConvertParams,
    run=_run,
)
