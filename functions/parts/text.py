"""detect_text: find lines of text with the PP-OCRv4 DB detector on Triton.

The model (``text_detection`` in the model repository) maps a picture to a
per-pixel probability of being text. The part follows RapidOCR's PP-OCRv4
pipeline (BGR, ``(x / 255 - 0.5) / 0.5``) except for the resize: the picture
is letterboxed into one ``max_side`` square so that concurrent requests share
a shape and Triton's dynamic batcher can merge them. The probability map is
turned into boxes as in PaddleOCR's ``DBPostProcess``: threshold, contours,
mean probability per box, then each box grown by
``area * unclip_ratio / perimeter`` (DB shrinks text regions in training by
that offset).

Example:
    >>> PART.parse_params({"box_threshold": 0.6}).unclip_ratio
    1.6
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, detection_metadata
from functions.parts._letterbox import Letterbox, as_box, rgb
from functions.parts._opencv import load_opencv

if TYPE_CHECKING:
    import numpy.typing as npt

MODEL = "text_detection"
INPUT = "x"
OUTPUT = "sigmoid_0.tmp_0"
# Pad with mid-gray: it normalizes to 0, the least "text-like" input there is.
_FILL = 128
# PaddleOCR's DBPostProcess limits: contours examined, and the shortest side
# (in map pixels) of a box before and after unclipping.
_MAX_CANDIDATES = 1000
_MIN_SIDE = 3


class TextParams(Params):
    """Params of detect_text."""

    threshold: float = Field(0.3, gt=0, lt=1, description="Pixel probability that counts as text.")
    box_threshold: float = Field(
        0.5, ge=0, le=1, description="Minimum mean probability inside a box to keep it."
    )
    unclip_ratio: float = Field(
        1.6, ge=0.5, le=4.0, description="How far each box is grown (DB's unclip ratio)."
    )
    max_side: int = Field(
        960, ge=320, le=2048, multiple_of=32, description="Side of the square the model sees."
    )


def preprocess(
    pixels: npt.NDArray[np.uint8], max_side: int
) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """The model input ``[1, 3, max_side, max_side]`` for a picture, and its letterbox."""
    picture = rgb(pixels)
    box = Letterbox.fit(picture.shape[1], picture.shape[0], max_side)
    canvas = box.apply(picture, _FILL)[:, :, ::-1]  # RGB -> BGR, the order PP-OCR was trained on
    normalized = (canvas.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None]), box


def boxes_from_probabilities(
    prob: npt.ArrayLike,
    threshold: float = 0.3,
    box_threshold: float = 0.5,
    unclip_ratio: float = 1.6,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Axis-aligned text boxes in a DB probability map (PaddleOCR's DB post-processing).

    Args:
        prob: ``H x W`` probabilities.
        threshold: probability above which a pixel is text.
        box_threshold: minimum mean probability inside a region's box.
        unclip_ratio: growth of each box: its rectangle is offset outwards by
            ``area * unclip_ratio / perimeter``.

    Returns:
        ``N x 4`` boxes ``x1, y1, x2, y2`` in map pixels (clipped to the map)
        and their ``N`` scores, in reading order (top to bottom, then left to right).
    """
    load_opencv()
    import cv2

    prob = np.asarray(prob, dtype=np.float32)
    height, width = prob.shape
    bitmap = (prob > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[list[float]] = []
    scores: list[float] = []
    for contour in contours[:_MAX_CANDIDATES]:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < _MIN_SIDE:
            continue
        corners = np.asarray(cv2.boxPoints(((cx, cy), (w, h), angle)), dtype=np.float32)
        score = _mean_inside(prob, corners)
        if score < box_threshold:
            continue
        # The rounded offset of a rectangle by d has, as its minimum-area
        # rectangle, the same rectangle grown by d on every side: DB's unclip
        # (pyclipper offset + minAreaRect) without a polygon-clipping library.
        grow = w * h * unclip_ratio / (2 * (w + h))
        w, h = w + 2 * grow, h + 2 * grow
        if min(w, h) < _MIN_SIDE + 2:
            continue
        grown = cv2.boxPoints(((cx, cy), (w, h), angle))
        x1, y1 = np.maximum(grown.min(axis=0), 0.0)
        x2, y2 = np.minimum(grown.max(axis=0), (width, height))
        boxes.append([float(x1), float(y1), float(x2), float(y2)])
        scores.append(score)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0)
    found = np.array(boxes, dtype=np.float64)
    order = _reading_order(found)
    return found[order], np.array(scores, dtype=np.float64)[order]


def _reading_order(boxes: npt.NDArray[np.float64]) -> list[int]:
    """Indices of ``boxes`` line by line from the top, each line left to right.

    A box joins the current line when its vertical centre lies above the
    bottom of the line's first box; sorting by top alone would misorder boxes
    of one line whose heights differ.
    """
    centres = (boxes[:, 1] + boxes[:, 3]) / 2
    lines: list[list[int]] = []
    for i in np.argsort(centres, kind="stable").tolist():
        if lines and centres[i] <= boxes[lines[-1][0], 3]:
            lines[-1].append(i)
        else:
            lines.append([i])
    return [i for line in lines for i in sorted(line, key=lambda j: float(boxes[j, 0]))]


def _mean_inside(prob: npt.NDArray[np.float32], corners: npt.NDArray[np.float32]) -> float:
    """Mean of ``prob`` inside a polygon (PaddleOCR's ``box_score_fast``)."""
    load_opencv()
    import cv2

    height, width = prob.shape
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (corners - np.array([x0, y0])).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], (1,))
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def detect_text(pictures: list[Picture], params: TextParams, context: StepContext) -> PartResult:
    """Find text boxes in the first picture (metadata only; the picture passes through).

    Raises:
        ModelNotReady: Triton or its ``text_detection`` model is not available.
        InferenceFailed: Triton rejected the request.
    """
    picture = pictures[0]
    tensor, letterbox = preprocess(picture.pixels, params.max_side)
    out = context.inference_client().infer(
        MODEL, {INPUT: tensor}, [OUTPUT], traceparent=context.traceparent
    )
    prob = out[OUTPUT][0, 0]
    boxes, scores = boxes_from_probabilities(
        prob, params.threshold, params.box_threshold, params.unclip_ratio
    )
    boxes = letterbox.to_source(boxes)
    found = [Detection("text", float(s), as_box(b)) for b, s in zip(boxes, scores, strict=True)]
    metadata = detection_metadata(found, picture.width, picture.height)
    return PartResult(picture=None, metadata={**metadata, "model": MODEL})


PART = Part(
    name="detect_text",
    group=Group.AI,
    summary="Find lines of printed text (PP-OCRv4 text detector on Triton).",
    params=TextParams,
    run=detect_text,
    output="detections",
    labels=("text",),
    uses_inference=True,
)
