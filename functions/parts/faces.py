"""detect_faces: frontal faces found on the CPU with OpenCV's bundled Haar cascade.

The cascade is loaded once per process. Its detector answers no confidence,
so each face's ``score`` is the logistic of the cascade's last-stage sum
(``detectMultiScale3`` level weight): it grows with how clearly the window
passed the last stage and orders faces sensibly, but it is not a calibrated
probability.
"""

from __future__ import annotations

import math
import threading
from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field

from eventing.contract import JSON
from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, detection_metadata
from functions.parts._opencv import load_opencv

if TYPE_CHECKING:
    import cv2

# Larger pictures are searched at this longer side: the cascade's window is
# 24 px anyway, and a 4000 px photo at full size takes seconds.
_SEARCH_MAX_SIDE = 1280
# One CascadeClassifier is not safe to run from two threads at once (it keeps
# scratch buffers), and functions-framework serves requests on threads.
_CASCADE_LOCK = threading.Lock()


class FaceParams(Params):
    """How hard the Haar cascade looks for faces."""

    min_size: int = Field(24, ge=1, le=4096, description="Smallest face side to find, in pixels.")
    scale_factor: float = Field(
        1.1, ge=1.01, le=2.0, description="Step between search scales; smaller is slower."
    )
    min_neighbors: int = Field(
        5, ge=1, le=20, description="Overlapping hits a face needs; higher finds fewer."
    )


class FaceDetector:
    """Finds frontal faces (the part.Detector protocol) with the Haar cascade."""

    def __init__(self, params: FaceParams) -> None:
        self.params = params

    def __call__(self, picture: Picture, /) -> list[JSON]:
        """Detections (label ``face``) in the picture's pixels, as JSON dicts."""
        return [d.to_data() for d in self.find(picture)]

    def find(self, picture: Picture) -> list[Detection]:
        """Detections (label ``face``) in the picture's pixels."""
        load_opencv()
        import cv2

        code = cv2.COLOR_RGBA2GRAY if picture.pixels.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        gray = cv2.cvtColor(picture.pixels, code)
        scale = min(1.0, _SEARCH_MAX_SIDE / max(picture.width, picture.height))
        if scale < 1.0:
            size = (round(picture.width * scale), round(picture.height * scale))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        side = max(1, round(self.params.min_size * scale))
        with _CASCADE_LOCK:
            boxes, _levels, weights = _cascade().detectMultiScale3(
                gray,
                scaleFactor=self.params.scale_factor,
                minNeighbors=self.params.min_neighbors,
                minSize=(side, side),
                outputRejectLevels=True,
            )
        found = []
        for (x, y, w, h), weight in zip(boxes, weights, strict=True):
            box = (
                max(0, math.floor(x / scale)),
                max(0, math.floor(y / scale)),
                min(picture.width, math.ceil((x + w) / scale)),
                min(picture.height, math.ceil((y + h) / scale)),
            )
            found.append(Detection("face", _logistic(float(weight)), box))
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


def _run(pictures: list[Picture], params: FaceParams, context: StepContext) -> PartResult:
    picture = pictures[0]
    found = FaceDetector(params).find(picture)
    return PartResult(None, detection_metadata(found, picture.width, picture.height))


PART = Part(
    name="detect_faces",
    group=Group.AI,
    summary="Find frontal faces (OpenCV Haar cascade, CPU); the image passes through.",
    params=FaceParams,
    run=_run,
    output="detections",
    labels=("face",),
)
