"""resize: scale a picture to fit a width, a height and/or a longest side.

The aspect ratio is always kept: the picture is scaled by the smallest factor
any given limit asks for. It is never enlarged unless ``upscale`` is set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Self

from pydantic import Field, model_validator

from functions.part import Group, Params, Part, PartResult, Picture, StepContext

_MAX_SIDE = 16384


class ResizeParams(Params):
    """Target size limits; at least one is required."""

    width: int | None = Field(
        None, ge=1, le=_MAX_SIDE, description="Fit within this width, in pixels."
    )
    height: int | None = Field(
        None, ge=1, le=_MAX_SIDE, description="Fit within this height, in pixels."
    )
    max_side: int | None = Field(
        None, ge=1, le=_MAX_SIDE, description="Fit the longer side within this, in pixels."
    )
    upscale: bool = Field(False, description="Also enlarge pictures smaller than the limits.")

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if self.width is None and self.height is None and self.max_side is None:
            raise ValueError("give at least one of width, height or max_side")
        return self


def target_size(width: int, height: int, params: ResizeParams) -> tuple[int, int]:
    """The ``(width, height)`` a ``width`` x ``height`` picture is resized to."""
    factors = []
    if params.width is not None:
        factors.append(params.width / width)
    if params.height is not None:
        factors.append(params.height / height)
    if params.max_side is not None:
        factors.append(params.max_side / max(width, height))
    scale = min(factors)
    if scale > 1.0 and not params.upscale:
        scale = 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def _run(pictures: list[Picture], params: ResizeParams, context: StepContext) -> PartResult:
    import numpy as np
    from PIL import Image

    picture = pictures[0]
    size = target_size(picture.width, picture.height, params)
    changed = size != (picture.width, picture.height)
    pixels = picture.pixels
    if changed:
        # LANCZOS is the high-quality filter both ways; reducing_gap first
        # shrinks by whole factors (box filter) so big downscales stay fast
        # with no visible difference. Pillow resizes RGBA premultiplied.
        resized = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        pixels = np.asarray(resized, dtype=np.uint8).copy()
    metadata = {
        "image": {"width": size[0], "height": size[1]},
        "resized": size != (picture.width, picture.height),
    }
    return PartResult(replace(picture, pixels=pixels), metadata)


PART = Part(
    name="resize",
    group=Group.PRE,
    summary="Scale to fit a width, height and/or longest side, keeping the aspect ratio.",
    params=ResizeParams,
    run=_run,
)
