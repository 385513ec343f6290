"""blur: obscure the regions upstream detectors found (faces, plates, text...).

:func:`blur_regions` is the one region-obscuring routine; blur_faces reuses
it. Only the padded boxes change: every pixel outside them keeps its value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Box, padded_box, upstream_detections
from functions.parts._opencv import load_opencv

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class BlurStyle(Params):
    """How a region is obscured."""

    method: Literal["blur", "pixelate"] = Field(
        "blur", description="Gaussian blur, or pixelate into coarse blocks."
    )
    strength: int = Field(
        25,
        ge=1,
        le=100,
        description="1 barely softens; 100 flattens. Relative to each region's size.",
    )
    padding: float = Field(
        0.1, ge=0.0, le=1.0, description="Grow each box by this fraction of its size per side."
    )


class BlurParams(BlurStyle):
    """Which upstream detections to obscure, and how."""

    labels: tuple[str, ...] = Field(
        ("face",), min_length=1, description="Detection labels to obscure."
    )
    min_score: float = Field(
        0.0, ge=0.0, le=1.0, description="Ignore detections scoring below this."
    )


def blur_regions(
    pixels: npt.NDArray[np.uint8], boxes: Iterable[Box], style: BlurStyle
) -> npt.NDArray[np.uint8]:
    """A copy of ``pixels`` with each (padded) box obscured.

    Args:
        pixels: ``H x W x C`` uint8 picture.
        boxes: ``(x1, y1, x2, y2)`` boxes in the picture's pixels.
        style: Method, strength and padding.

    Returns:
        A new array; pixels outside every padded box are unchanged.
    """
    out = pixels.copy()
    height, width = pixels.shape[:2]
    for box in boxes:
        bounds = padded_box(box, style.padding, width, height)
        if bounds is None:
            continue
        left, top, right, bottom = bounds
        region = out[top:bottom, left:right]
        out[top:bottom, left:right] = _obscure(region, style)
    return out


def _obscure(region: npt.NDArray[np.uint8], style: BlurStyle) -> npt.NDArray[np.uint8]:
    """The region blurred or pixelated, at a strength relative to its size."""
    load_opencv()
    import cv2
    import numpy as np

    rows, cols = region.shape[:2]
    amount = style.strength / 100.0
    if style.method == "pixelate":
        # At strength 25 a face becomes about 8 blocks across.
        block = max(2.0, amount * max(rows, cols) / 2.0)
        small = (max(1, round(cols / block)), max(1, round(rows / block)))
        coarse = cv2.resize(region, small, interpolation=cv2.INTER_AREA)
        result = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_NEAREST)
    else:
        sigma = max(0.5, amount * max(rows, cols) / 2.0)
        # Reflecting inside the region keeps outside pixels out of the blur.
        result = cv2.GaussianBlur(
            region, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
        )
    # cv2 drops the channel axis of a one-pixel-wide result; put it back.
    obscured: npt.NDArray[np.uint8] = np.asarray(result, dtype=np.uint8).reshape(region.shape)
    return obscured


def _run(pictures: list[Picture], params: BlurParams, context: StepContext) -> PartResult:
    picture = pictures[0]
    found = upstream_detections(
        context.upstream, picture.width, picture.height, params.labels, params.min_score
    )
    pixels = blur_regions(picture.pixels, (d.box for d in found), params)
    return PartResult(
        replace(picture, pixels=pixels), {"blurred": len(found), "labels": list(params.labels)}
    )


PART = Part(
    name="blur",
    group=Group.POST,
    summary="Blur or pixelate the boxes upstream detectors found, by label.",
    params=BlurParams,
    run=_run,
)
