"""Where a detector looks: the whole picture once, then overlapping magnified tiles.

A face of 24 px fills six cells of CenterFace's output grid; at that size the
detector is sure of a face with its head around it but not of a tightly
framed one (see ``bench/faces.py``), and shrinking a large photo to a size
the model can take in one pass makes every face smaller still. So a picture
is searched in two passes whose detections are merged by NMS, as SAHI
(slicing-aided hyper inference) does:

1. the whole picture, magnified by ``zoom`` or, when that would make its
   longer side exceed ``max_side``, scaled to fit ``max_side``: it finds the
   large faces, whole;
2. only when that pass could not see the picture at ``zoom``: square tiles of
   ``tile`` model pixels cut from the picture at ``zoom``, overlapping by
   ``overlap``. All tiles have one shape, so they go to Triton as one batch
   and bound the memory a request needs.

A face cut by a tile's inner edge is dropped from that tile: the next tile
holds it whole when it is smaller than the overlap, and the whole pass finds
it when it is larger.

Example:
    >>> [v.region for v in plan_views(800, 600, zoom=1.0, max_side=1024)]
    [(0, 0, 800, 600)]
    >>> len(plan_views(2400, 1600, zoom=1.0, max_side=1024))  # whole + 5 x 3 tiles
    16
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from functions.parts._letterbox import rgb
from functions.parts._opencv import load_opencv

STRIDE = 32  # a view's model input sides are multiples of this

# Tile side and overlap, in model pixels: 640 x 640 tiles cost about 50 MB of
# activations each on the CPU; the overlap holds any face of up to 128 model
# pixels (64 source pixels at zoom 2) whole in some tile.
TILE = 640
OVERLAP = 128
# A tile's detection this close (model pixels) to an inner edge is taken as cut.
_EDGE = 2.0


@dataclass(frozen=True)
class View:
    """A region of the source picture scaled by ``scale`` into a ``width x height`` input.

    ``region`` is ``left, top, right, bottom`` in source pixels. The input is
    the scaled region at the top-left, padded with black to ``width x height``
    (multiples of 32). ``inner_edges`` says which sides of the region lie
    inside the picture (a tile's), where a detection touching it was cut.
    """

    region: tuple[int, int, int, int]
    scale: float
    width: int
    height: int
    inner_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def is_tile(self) -> bool:
        return any(self.inner_edges)

    def crop(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The model input ``H x W x 3`` (RGB) for this view of ``pixels``."""
        load_opencv()
        import cv2

        left, top, right, bottom = self.region
        part = rgb(pixels[top:bottom, left:right])
        size = (
            min(self.width, max(1, round((right - left) * self.scale))),
            min(self.height, max(1, round((bottom - top) * self.scale))),
        )
        if (part.shape[1], part.shape[0]) != size:
            shrinking = size[0] < part.shape[1]
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            part = np.asarray(cv2.resize(part, size, interpolation=interpolation))
        canvas = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        canvas[: part.shape[0], : part.shape[1]] = part
        return canvas

    def cut(self, boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which ``N x 4`` boxes (model pixels) touch an inner edge of this view."""
        left, top, right, bottom = self.region
        limits = (
            0.0,
            0.0,
            (right - left) * self.scale,
            (bottom - top) * self.scale,
        )
        touching = np.zeros(len(boxes), dtype=bool)
        for side, inner in enumerate(self.inner_edges):
            if not inner:
                continue
            if side < 2:
                touching |= boxes[:, side] <= limits[side] + _EDGE
            else:
                touching |= boxes[:, side] >= limits[side] - _EDGE
        return touching

    def to_source(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``N x 2k`` ``x, y ...`` rows from model pixels to source pixels (not clipped)."""
        out = points / self.scale
        out[:, 0::2] += self.region[0]
        out[:, 1::2] += self.region[1]
        return out


def _padded(value: float) -> int:
    return max(STRIDE, math.ceil(value / STRIDE) * STRIDE)


def _starts(length: int, window: int, overlap: int) -> list[int]:
    """Evenly spread starts of windows covering ``0..length`` with at least ``overlap``."""
    if length <= window:
        return [0]
    count = math.ceil((length - overlap) / (window - overlap))
    step = (length - window) / (count - 1)
    return [round(i * step) for i in range(count)]


def plan_views(width: int, height: int, zoom: float, max_side: int) -> list[View]:
    """The whole-picture view, then (when it is scaled below ``zoom``) the tiles.

    Args:
        width: source picture width (> 0).
        height: source picture height (> 0).
        zoom: the magnification small faces are searched at (1 = the source's pixels).
        max_side: the longest side of the whole-picture view, in model pixels.

    Returns:
        The views, whole picture first; every tile has the same ``TILE x TILE`` input.
    """
    whole = min(zoom, max_side / max(width, height))
    views = [
        View(
            (0, 0, width, height),
            whole,
            _padded(width * whole),
            _padded(height * whole),
        )
    ]
    if whole >= zoom:
        return views
    # Tiles: TILE model pixels are TILE / zoom source pixels.
    window = min(max(width, height), max(1, math.floor(TILE / zoom)))
    overlap = min(window - 1, math.ceil(OVERLAP / zoom))
    for top in _starts(height, window, overlap):
        for left in _starts(width, window, overlap):
            right, bottom = min(width, left + window), min(height, top + window)
            inner = (left > 0, top > 0, right < width, bottom < height)
            views.append(View((left, top, right, bottom), zoom, TILE, TILE, inner))
    return views
