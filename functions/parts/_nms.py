"""Greedy non-maximum suppression, shared by the detectors that decode raw model outputs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def nms(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], iou: float
) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    Args:
        boxes: ``N x 4`` boxes ``x1, y1, x2, y2``.
        scores: ``N`` scores.
        iou: a box whose IoU with a kept, better box is above this is dropped.

    Example:
        >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
        >>> nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(
            boxes[best, 0], boxes[rest, 0]
        )
        inter_h = np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(
            boxes[best, 1], boxes[rest, 1]
        )
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.array(keep, dtype=np.intp)
