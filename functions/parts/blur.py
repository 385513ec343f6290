"""blur: obscure the regions upstream detectors found (faces, plates, text...).

:func:`blur_regions` is the one region-obscuring routine; blur_faces reuses
it. Only the padded boxes change: every pixel outside them keeps its value.

Three methods:

- ``smudge`` (the default) replaces each padded box with a smooth blend of
  the colours *around* it (normalized convolution over the surrounding band,
  computed small and scaled up). Nothing inside the box survives, so the
  result carries no information about the face or text that was there: no
  detector finds it again and no gallery matches it, whatever the attacker
  knows about the method.
- ``blur`` is a Gaussian blur whose width is ``strength`` % of half the
  region's size. It keeps the region's coarse light and dark layout: at
  strength 25 a nearest-neighbour match against the original faces still
  identifies most of 100 faces, and even at 100 an attacker who blurs a
  gallery the same way identifies about a quarter of them (measured in
  ``tests/functions/test_parts_blur.py``). Use it where that is acceptable.
- ``pixelate`` averages coarse blocks (about 8 across a face at strength 25).
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

    method: Literal["smudge", "blur", "pixelate"] = Field(
        "smudge",
        description=(
            "smudge: replace the region with a smooth blend of the colours around it "
            "(nothing of it survives; the default). blur: Gaussian blur. pixelate: coarse blocks."
        ),
    )
    strength: int = Field(
        25,
        ge=1,
        le=100,
        description="blur and pixelate: 1 barely softens; 100 flattens. Relative to region size.",
    )
    padding: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Grow each box by this fraction of its size per side (covers hair, ears).",
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
        if style.method == "smudge":
            _smudge(out, bounds)
            continue
        region = out[top:bottom, left:right]
        out[top:bottom, left:right] = _obscure(region, style)
    return out


# smudge: the band around a region it draws colours from (a fraction of the
# region's size per side), and the side of the small grid the blend is
# computed on before it is scaled up (it is smooth, so nothing is lost).
_BAND = 0.5
_GRID = 24


def _smudge(pixels: npt.NDArray[np.uint8], bounds: tuple[int, int, int, int]) -> None:
    """Replace ``bounds`` in ``pixels`` (in place) with a blend of the colours around it.

    Normalized convolution: a Gaussian-weighted mean of the pixels in a band
    around the region, with the region itself weighted zero, so no pixel of
    the region reaches the output. Computed on a small grid, then scaled up.
    """
    load_opencv()
    import cv2
    import numpy as np

    height, width = pixels.shape[:2]
    left, top, right, bottom = bounds
    band_x, band_y = max(2, round((right - left) * _BAND)), max(2, round((bottom - top) * _BAND))
    x0, y0 = max(0, left - band_x), max(0, top - band_y)
    x1, y1 = min(width, right + band_x), min(height, bottom + band_y)
    window = pixels[y0:y1, x0:x1].astype(np.float32)
    weight = np.ones(window.shape[:2], np.float32)
    weight[top - y0 : bottom - y0, left - x0 : right - x0] = 0.0
    scale = _GRID / max(x1 - x0, y1 - y0)
    grid = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    # Area averaging keeps each grid cell's share of outside pixels exact.
    small = cv2.resize(window * weight[:, :, None], grid, interpolation=cv2.INTER_AREA)
    small_weight = cv2.resize(weight, grid, interpolation=cv2.INTER_AREA)
    sigma = _GRID / 4
    num = cv2.GaussianBlur(small, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(small_weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    channels = window.shape[2]
    num = num.reshape(grid[1], grid[0], channels)
    if float(den.max()) < 1e-6:
        # No pixel outside the region (it covers the picture): nothing to draw from.
        blend = np.full_like(num, 128.0)
    else:
        blend = num / np.maximum(den, 1e-6)[:, :, None]
    full = cv2.resize(blend, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    full = np.asarray(full, np.float32).reshape(y1 - y0, x1 - x0, channels)
    region = full[top - y0 : bottom - y0, left - x0 : right - x0]
    pixels[top:bottom, left:right] = np.clip(np.rint(region), 0, 255).astype(np.uint8)


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
    summary="Obscure the boxes upstream detectors found, by label (smudge, blur or pixelate).",
    params=BlurParams,
    run=_run,
    reads_upstream=True,
)
