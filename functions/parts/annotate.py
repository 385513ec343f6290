"""annotate: draw the upstream detections (box and ``label score``) on the picture."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import Field

from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, upstream_detections

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont


class AnnotateParams(Params):
    """Which detections to draw, and in what colour and line width."""

    labels: tuple[str, ...] | None = Field(
        None, description="Draw only detections with these labels; all if omitted."
    )
    color: str = Field(
        "#ff0000", pattern=r"^#[0-9a-fA-F]{6}$", description="Box colour, as #rrggbb."
    )
    thickness: int = Field(3, ge=1, le=20, description="Box line width, in pixels.")
    min_score: float = Field(
        0.0, ge=0.0, le=1.0, description="Ignore detections scoring below this."
    )


def _run(pictures: list[Picture], params: AnnotateParams, context: StepContext) -> PartResult:
    import numpy as np
    from PIL import Image, ImageDraw

    picture = pictures[0]
    found = upstream_detections(
        context.upstream, picture.width, picture.height, params.labels, params.min_score
    )
    image = Image.fromarray(picture.pixels)
    draw = ImageDraw.Draw(image)
    font = _font(max(12, min(picture.width, picture.height) // 40))
    for detection in found:
        _draw(draw, font, detection, params)
    pixels = np.asarray(image, dtype=np.uint8).copy()
    return PartResult(replace(picture, pixels=pixels), {"annotated": len(found)})


def _draw(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    detection: Detection,
    params: AnnotateParams,
) -> None:
    """One box, with its caption on a filled tab above it (inside if at the top edge)."""
    x1, y1, x2, y2 = detection.box
    color = _rgb(params.color)
    draw.rectangle((x1, y1, x2, y2), outline=color, width=params.thickness)
    caption = f"{detection.label} {detection.score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
    text_w, text_h = right - left + 4, bottom - top + 4
    tab_y = y1 - text_h if y1 - text_h >= 0 else y1
    draw.rectangle((x1, tab_y, x1 + text_w, tab_y + text_h), fill=color)
    draw.text((x1 + 2 - left, tab_y + 2 - top), caption, fill=_contrast(color), font=font)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    # Pillow's bundled font; the fixed-size bitmap one without FreeType.
    return ImageFont.load_default(size=size)


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color[1:], 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _contrast(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (ITU-R BT.601 luma)."""
    red, green, blue = color
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


PART = Part(
    name="annotate",
    group=Group.POST,
    summary="Draw upstream detections (boxes and 'label score') on the image.",
    params=AnnotateParams,
    run=_run,
    reads_upstream=True,
)
