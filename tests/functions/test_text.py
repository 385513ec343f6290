"""detect_text's pure parts: params, preprocessing and DB post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from functions.errors import BadParams
from functions.parts.text import PART, boxes_from_probabilities, preprocess


def synthetic_map(
    rects: list[tuple[int, int, int, int]], shape: tuple[int, int] = (200, 300)
) -> np.ndarray:
    """A probability map: 0.05 background, 0.9 inside each half-open rect x0, y0, x1, y1."""
    prob = np.full(shape, 0.05, dtype=np.float32)
    for x0, y0, x1, y1 in rects:
        prob[y0:y1, x0:x1] = 0.9
    return prob


def unclipped(rect: tuple[int, int, int, int], ratio: float) -> list[float]:
    """DB's unclip of the rectangle through the centres of a rect's edge pixels."""
    x0, y0, x1, y1 = rect
    w, h = x1 - 1 - x0, y1 - 1 - y0
    d = w * h * ratio / (2 * (w + h))
    return [x0 - d, y0 - d, x1 - 1 + d, y1 - 1 + d]


RECTS = [(20, 30, 120, 50), (150, 28, 260, 58), (40, 120, 100, 140)]


@pytest.mark.parametrize("ratio", [1.0, 1.6, 2.0])
def test_rectangles_are_recovered_exactly(ratio: float) -> None:
    boxes, scores = boxes_from_probabilities(synthetic_map(RECTS), unclip_ratio=ratio)
    # Reading order: the two top rects left to right, then the lower one.
    expected = [unclipped(r, ratio) for r in RECTS]
    np.testing.assert_allclose(boxes, expected, atol=1e-3)
    np.testing.assert_allclose(scores, 0.9, atol=1e-6)


def test_boxes_are_clipped_to_the_map() -> None:
    boxes, _ = boxes_from_probabilities(synthetic_map([(0, 0, 50, 20)]))
    assert boxes[0, 0] == 0
    assert boxes[0, 1] == 0


@pytest.mark.parametrize(
    ("rect", "kept"),
    [((10, 10, 12, 40), False), ((10, 10, 14, 40), True)],  # width 1 vs 3 between pixel centres
)
def test_thin_regions_are_dropped(rect: tuple[int, int, int, int], kept: bool) -> None:
    boxes, _ = boxes_from_probabilities(synthetic_map([rect]))
    assert len(boxes) == int(kept)


def test_box_threshold_drops_faint_regions() -> None:
    prob = synthetic_map(RECTS)
    prob[120:140, 40:100] = 0.4  # above threshold 0.3, mean under box_threshold 0.5
    boxes, _ = boxes_from_probabilities(prob)
    assert len(boxes) == 2
    assert len(boxes_from_probabilities(prob, box_threshold=0.35)[0]) == 3


def test_empty_map_has_no_boxes() -> None:
    boxes, scores = boxes_from_probabilities(np.zeros((64, 64), np.float32))
    assert boxes.shape == (0, 4)
    assert scores.shape == (0,)


def test_preprocess_letterboxes_bgr_normalized() -> None:
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[..., 0] = 255  # pure red
    tensor, box = preprocess(pixels, 320)
    assert tensor.shape == (1, 3, 320, 320)
    assert tensor.dtype == np.float32
    assert (box.top, box.height) == (80, 160)
    # Inside the picture: red is channel 2 in BGR, normalized to 1; blue is -1.
    assert tensor[0, 2, 160, 160] == pytest.approx(1.0)
    assert tensor[0, 0, 160, 160] == pytest.approx(-1.0)
    # The gray padding normalizes to about 0.
    assert abs(tensor[0, :, 10, 160]).max() < 0.01


def test_grayscale_pixels_are_accepted() -> None:
    tensor, _ = preprocess(np.full((64, 64), 200, dtype=np.uint8), 320)
    assert tensor.shape == (1, 3, 320, 320)


@pytest.mark.parametrize(
    "params",
    [{"max_side": 1000}, {"threshold": 0}, {"box_threshold": 1.5}, {"unclip_ratio": 9}, {"x": 1}],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        PART.parse_params(params)


def test_part_shape() -> None:
    assert PART.name == "detect_text"
    assert PART.labels == ("text",)
    assert PART.uses_inference
    assert set(PART.schema()["properties"]) == {
        "threshold",
        "box_threshold",
        "unclip_ratio",
        "max_side",
    }
