"""OpenCV's bundled Haar cascade: frontal faces on the CPU, in the part's own process.

The cascade is loaded once per process. Its detector answers no confidence,
so each face's score is the logistic of the cascade's last-stage sum
(``detectMultiScale3`` level weight): it grows with how clearly the window
passed the last stage and orders faces sensibly, but it is not a calibrated
probability. The cascade's window is 24 x 24, so it finds no smaller face.
"""

from __future__ import annotations

import math
import threading
from functools import cache
from typing import TYPE_CHECKING

from functions.parts._boxes import Box
from functions.parts._opencv import load_opencv

if TYPE_CHECKING:
    import cv2
    import numpy as np
    import numpy.typing as npt

# Larger pictures are searched at this longer side: the cascade's window is
# 24 px anyway, and a 4000 px photo at full size takes seconds.
SEARCH_MAX_SIDE = 1280
# One CascadeClassifier is not safe to run from two threads at once (it keeps
# scratch buffers), and a part runs each step in a worker thread (asyncio.to_thread).
_CASCADE_LOCK = threading.Lock()


def haar_faces(
    pixels: npt.NDArray[np.uint8], min_size: int, scale_factor: float, min_neighbors: int
) -> list[tuple[Box, float]]:
    """Frontal faces in an ``H x W x 3|4`` RGB(A) picture: (box, score) in its pixels.

    Args:
        pixels: the picture.
        min_size: smallest face side to find, in the picture's pixels.
        scale_factor: step between search scales.
        min_neighbors: overlapping hits a face needs.
    """
    load_opencv()
    import cv2

    height, width = pixels.shape[:2]
    code = cv2.COLOR_RGBA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_RGB2GRAY
    gray = cv2.cvtColor(pixels, code)
    scale = min(1.0, SEARCH_MAX_SIDE / max(width, height))
    if scale < 1.0:
        size = (round(width * scale), round(height * scale))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    side = max(1, round(min_size * scale))
    with _CASCADE_LOCK:
        boxes, _levels, weights = _cascade().detectMultiScale3(
            gray,
            scaleFactor=scale_factor,
            minNeighbors=min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
    found: list[tuple[Box, float]] = []
    for (x, y, w, h), weight in zip(boxes, weights, strict=True):
        # Whole pixels, rounded outwards (a box of ints is still a Box).
        box: Box = (
            max(0, math.floor(x / scale)),
            max(0, math.floor(y / scale)),
            min(width, math.ceil((x + w) / scale)),
            min(height, math.ceil((y + h) / scale)),
        )
        found.append((box, _logistic(float(weight))))
    return found


@cache
def _cascade() -> cv2.CascadeClassifier:
    """The frontal-face cascade that ships inside the OpenCV wheel (loaded once)."""
    load_opencv()
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its Haar cascade from {path}")
    return cascade


def _logistic(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
