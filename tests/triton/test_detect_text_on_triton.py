"""detect_text through the real local Triton and the real PP-OCRv4 weights."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from functions.part import Picture, StepContext
from functions.parts.text import PART, TextParams

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def as_rgb(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))


def run(pixels: npt.NDArray[np.uint8], context: StepContext, **params: object) -> dict[str, object]:
    result = PART.run([Picture(pixels, "png")], TextParams.model_validate(params), context)
    assert result.picture is None
    return result.metadata


@pytest.mark.parametrize("max_side", [960, 640])
def test_finds_the_lines_of_a_printed_page(
    text_page: npt.NDArray[np.uint8], inference_context: StepContext, max_side: int
) -> None:
    height, width = text_page.shape
    meta = run(as_rgb(text_page), inference_context, max_side=max_side)
    detections = meta["detections"]
    assert isinstance(detections, list)
    assert meta["count"] == len(detections) >= 4
    assert meta["image"] == {"width": width, "height": height}
    assert meta["model"] == "text_detection"
    for d in detections:
        x1, y1, x2, y2 = d["box"]
        assert d["label"] == "text"
        assert 0.5 <= d["score"] <= 1
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
    # Lines of a page are wide and come in reading order.
    assert all(d["box"][2] - d["box"][0] > d["box"][3] - d["box"][1] for d in detections)
    centres = [(d["box"][1] + d["box"][3]) / 2 for d in detections]
    assert centres == sorted(centres)


def test_finds_text_in_a_photo(inference_context: StepContext) -> None:
    from skimage import data

    meta = run(as_rgb(data.text()), inference_context)
    assert meta["count"] >= 1


def test_rgba_picture_is_accepted(
    text_page: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    rgba = np.dstack([as_rgb(text_page), np.full(text_page.shape, 255, np.uint8)])
    assert (
        run(rgba, inference_context)["count"] == run(as_rgb(text_page), inference_context)["count"]
    )


def test_blank_picture_has_no_text(inference_context: StepContext) -> None:
    blank = np.full((300, 400, 3), 255, dtype=np.uint8)
    assert run(blank, inference_context) == {
        "detections": [],
        "count": 0,
        "image": {"width": 400, "height": 300},
        "model": "text_detection",
    }
