"""Detections as parts exchange them, rescaled between picture sizes.

A detector part answers with metadata of this shape (boxes in pixels of the
picture it saw, ``[x1, y1, x2, y2]``)::

    {"detections": [{"label": "face", "score": 0.99, "box": [177, 66, 272, 161]}],
     "count": 1,
     "image": {"width": 512, "height": 512}}

A detection may carry more: ``landmarks`` (detect_faces' CenterFace: five
``[x, y]`` points, eyes, nose tip, mouth corners) and ``text`` (read_text).

Parts downstream (blur, annotate, read_text) collect the detections of every
upstream step and rescale each box from its ``image`` size to the picture in
hand, as a resize may have run in between. The same box with the same label
from two steps (detect_text's line and read_text's reading of it) counts once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eventing.contract import JSON, StepOutput

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One labelled box with its confidence (0..1), and what else the detector read in it."""

    label: str
    score: float
    box: Box
    # Five (x, y) points: eyes, nose tip, mouth corners (a face detector that gives them).
    landmarks: tuple[tuple[float, float], ...] | None = None
    # The string read in the box (read_text).
    text: str | None = None

    def to_data(self) -> JSON:
        data: JSON = {"label": self.label, "score": round(self.score, 4), "box": list(self.box)}
        if self.landmarks is not None:
            data["landmarks"] = [list(point) for point in self.landmarks]
        if self.text is not None:
            data["text"] = self.text
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Detection:
        """Parse one detection; ValueError/TypeError/KeyError if it has the wrong shape."""
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        return cls(str(data["label"]), float(data.get("score", 1.0)), (x1, y1, x2, y2))


def detection_metadata(detections: Iterable[Detection], width: int, height: int) -> JSON:
    """The metadata a detector part answers with (the shape in the module docstring)."""
    found = [d.to_data() for d in detections]
    return {"detections": found, "count": len(found), "image": {"width": width, "height": height}}


def upstream_detections(
    upstream: Mapping[str, StepOutput],
    width: int,
    height: int,
    labels: Collection[str] | None = None,
    min_score: float = 0.0,
) -> list[Detection]:
    """Every upstream detection, rescaled to a ``width`` x ``height`` picture.

    Args:
        upstream: Step id -> what that step produced.
        width: Width of the picture the boxes must fit.
        height: Its height.
        labels: Keep only these labels; all if None.
        min_score: Drop detections scoring below this.

    Returns:
        The kept detections, boxes in the new picture's pixels.
    """
    kept: list[Detection] = []
    seen: set[tuple[str, Box]] = set()
    for step_id, output in upstream.items():
        metadata = output.metadata
        raw = metadata.get("detections")
        if not isinstance(raw, list):
            continue
        scale_x, scale_y = _scale(metadata.get("image"), width, height)
        for item in raw:
            try:
                detection = Detection.from_data(item)
            except (KeyError, TypeError, ValueError):
                # One malformed entry must not hide the others (a missed face
                # would stay unblurred), so skip it loudly and go on.
                logger.warning("step %s: skipping malformed detection %r", step_id, item)
                continue
            if (labels is not None and detection.label not in labels) or (
                detection.score < min_score
            ):
                continue
            x1, y1, x2, y2 = detection.box
            box = (x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y)
            key = (detection.label, (round(box[0]), round(box[1]), round(box[2]), round(box[3])))
            if key in seen:
                continue
            seen.add(key)
            kept.append(Detection(detection.label, detection.score, box))
    return kept


def padded_box(
    box: Box, padding: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Integer pixel bounds of ``box`` grown by ``padding`` x its size on each side.

    Clipped to the picture; None when nothing of the box is inside it.
    """
    x1, y1, x2, y2 = box
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    # Round outwards so the whole box is covered.
    left = max(0, math.floor(x1 - pad_x))
    top = max(0, math.floor(y1 - pad_y))
    right = min(width, math.ceil(x2 + pad_x))
    bottom = min(height, math.ceil(y2 + pad_y))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _scale(image: object, width: int, height: int) -> tuple[float, float]:
    """Factors from the detector's picture size to ``width`` x ``height``."""
    if isinstance(image, Mapping):
        seen_w, seen_h = _positive(image.get("width")), _positive(image.get("height"))
        if seen_w is not None and seen_h is not None:
            return width / seen_w, height / seen_h
    # No size recorded: the boxes are taken to be in the current picture's pixels.
    return 1.0, 1.0


def _positive(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
