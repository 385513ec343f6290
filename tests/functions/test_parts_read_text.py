"""read_text without Triton: params, crops, batching and CTC decoding.

The recognizer itself runs on the real local Triton in
``tests/triton/test_read_text_on_triton.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventing.contract import ObjectRef, StepOutput
from functions.catalog import default_catalog
from functions.errors import BadParams
from functions.part import Picture, StepContext
from functions.parts._recognition import (
    HEIGHT,
    MAX_WIDTH,
    MIN_WIDTH,
    batches,
    crop_line,
    ctc_decode,
)

PART = default_catalog().get("read_text")


@pytest.mark.parametrize(
    ("codepoints", "expected"),
    [
        ([0, 72, 72, 0, 105, 0], "Hi"),  # repeats collapse, blanks drop
        ([108, 0, 108], "ll"),  # a blank separates a real double letter
        ([0, 0, 0], ""),
        ([32, 75, 32, 32, 0], "K"),  # surrounding spaces stripped
        ([20013, 25991], "中文"),
    ],
)
def test_ctc_decode(codepoints: list[int], expected: str) -> None:
    ((text, confidence),) = ctc_decode(np.array([codepoints]), np.full((1, len(codepoints)), 0.8))
    assert text == expected
    assert confidence == pytest.approx(0.8 if expected else 0.0)


def test_confidence_is_the_mean_over_kept_steps() -> None:
    decoded = ctc_decode(np.array([[65, 65, 0, 66]]), np.array([[0.9, 0.1, 0.99, 0.5]]))
    assert decoded == [("AB", pytest.approx(0.7))]


def test_crop_is_clipped_and_vertical_lines_turned() -> None:
    pixels = np.zeros((100, 200, 3), np.uint8)
    assert crop_line(pixels, (-10.0, -5.0, 50.0, 20.0)).shape == (20, 50, 3)  # type: ignore[union-attr]
    assert crop_line(pixels, (10.0, 10.0, 20.0, 60.0)).shape == (10, 50, 3)  # type: ignore[union-attr]
    assert crop_line(pixels, (300.0, 10.0, 400.0, 60.0)) is None
    gray = np.zeros((100, 200), np.uint8)
    assert crop_line(gray, (0.0, 0.0, 40.0, 10.0)).shape == (10, 40, 3)  # type: ignore[union-attr]


def test_batches_group_lines_by_aspect_ratio() -> None:
    crops = [np.zeros((20, w, 3), np.uint8) for w in (400, 40, 200, 60)]
    found = batches(crops, max_batch=2)
    assert [b.indices for b in found] == [(1, 3), (2, 0)]
    short, long = found
    assert short.tensor.shape == (2, 3, HEIGHT, MIN_WIDTH)
    assert long.tensor.shape == (2, 3, HEIGHT, 960)  # 400 / 20 * 48, a multiple of 32
    assert long.tensor.shape[3] % 32 == 0


def test_batch_tensor_is_bgr_normalized_and_zero_padded() -> None:
    crop = np.zeros((48, 48, 3), np.uint8)
    crop[..., 0] = 255  # pure red
    (batch,) = batches([crop], max_batch=4)
    tensor = batch.tensor[0]
    assert tensor[2, 10, 10] == pytest.approx(1.0)  # red is the last channel in BGR
    assert tensor[0, 10, 10] == pytest.approx(-1.0)
    assert (tensor[:, :, 48:] == 0).all()  # padding right of the line


def test_nothing_upstream_reads_nothing_without_triton() -> None:
    picture = Picture(np.zeros((50, 80, 3), np.uint8), "png")
    context = StepContext(source=ObjectRef("uploads", "p.png"))  # no inference client at all
    result = PART.run([picture], PART.parse_params({}), context)
    assert result.picture is None
    assert result.metadata == {
        "detections": [],
        "count": 0,
        "image": {"width": 80, "height": 50},
        "strings": [],
        "model": "text_recognition",
    }


def test_boxes_outside_the_picture_are_not_read() -> None:
    picture = Picture(np.zeros((50, 80, 3), np.uint8), "png")
    upstream = {
        "t": StepOutput(
            (),
            {
                "detections": [{"label": "text", "score": 0.9, "box": [100, 100, 150, 120]}],
                "image": {"width": 80, "height": 50},
            },
        )
    }
    context = StepContext(source=ObjectRef("uploads", "p.png"), upstream=upstream)
    assert PART.run([picture], PART.parse_params({}), context).metadata["count"] == 0


@pytest.mark.parametrize(
    "params",
    [{"labels": []}, {"min_confidence": 1.5}, {"max_lines": 0}, {"language": "en"}],
    ids=["labels", "confidence", "lines", "unknown"],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        PART.parse_params(params)


def test_part_shape() -> None:
    assert PART.name == "read_text"
    assert PART.output == "detections"
    assert PART.uses_inference
    assert set(PART.schema()["properties"]) == {
        "labels",
        "min_score",
        "min_confidence",
        "max_lines",
    }


def test_a_very_long_thin_line_is_squeezed_to_the_widest_input() -> None:
    (batch,) = batches([np.zeros((3, 4000, 3), np.uint8)], max_batch=8)
    assert batch.tensor.shape == (1, 3, HEIGHT, MAX_WIDTH)
