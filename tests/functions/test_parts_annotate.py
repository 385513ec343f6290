"""annotate: boxes and captions drawn where upstream detectors found things."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef, StepOutput
from functions.catalog import default_catalog
from functions.errors import BadParams
from functions.part import Picture, StepContext

SOURCE = ObjectRef("uploads", "astronaut.jpg")
BOX = (177, 66, 272, 161)


def _annotate(
    pixels: npt.NDArray[np.uint8], **params: object
) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    detections = [
        {"label": "face", "score": 0.97, "box": list(BOX)},
        {"label": "cat", "score": 0.5, "box": [300, 300, 400, 400]},
    ]
    metadata = {"detections": detections, "count": 2, "image": {"width": 512, "height": 512}}
    context = StepContext(source=SOURCE, upstream={"d": StepOutput((SOURCE,), metadata)})
    part = default_catalog().get("annotate")
    result = part.run([Picture(pixels, "png")], part.parse_params(params), context)
    assert result.picture is not None
    return result.picture.pixels, result.metadata


def test_boxes_are_drawn_in_the_colour(astronaut: npt.NDArray[np.uint8]) -> None:
    out, metadata = _annotate(astronaut, color="#00ff00", thickness=2)
    assert metadata == {"annotated": 2}
    x1, y1, _, y2 = BOX
    assert out[(y1 + y2) // 2, x1].tolist() == [0, 255, 0]  # left edge of the face box
    assert out[350, 300].tolist() == [0, 255, 0]  # left edge of the cat box
    # Far from both boxes and their captions nothing moved.
    assert np.array_equal(out[450:, :150], astronaut[450:, :150])


def test_label_filter(astronaut: npt.NDArray[np.uint8]) -> None:
    out, metadata = _annotate(astronaut, labels=["cat"], color="#0000ff")
    assert metadata == {"annotated": 1}
    x1, y1, x2, y2 = BOX
    assert np.array_equal(
        out[y1 - 30 : y2 + 5, x1 - 5 : x2 + 5], astronaut[y1 - 30 : y2 + 5, x1 - 5 : x2 + 5]
    )


@pytest.mark.parametrize("color", ["red", "#ff00", "#gg0000", "ff0000"])
def test_colour_must_be_hex(color: str) -> None:
    with pytest.raises(BadParams, match="color"):
        default_catalog().get("annotate").parse_params({"color": color})


def test_alpha_picture_keeps_its_alpha(astronaut: npt.NDArray[np.uint8]) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 200, np.uint8)])
    out, _ = _annotate(rgba)
    assert out.shape == rgba.shape
