"""Letterboxing: fit a picture into a fixed square for a detector, and map boxes back.

Detectors on Triton take one fixed input shape, so every picture is scaled
by one factor (keeping its aspect ratio) and padded evenly on both sides into
a ``size x size`` canvas, as Ultralytics does. Boxes the detector finds in the
canvas are mapped back to the picture's own pixels by undoing the padding and
the scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from functions.parts._boxes import Box
from functions.parts._opencv import load_opencv

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class Letterbox:
    """How a ``source_width x source_height`` picture sits in a ``size x size`` canvas."""

    source_width: int
    source_height: int
    size: int
    scale: float
    width: int  # of the scaled picture inside the canvas
    height: int
    left: int  # padding before the picture
    top: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        """The letterbox of a ``width x height`` picture in a ``size`` square.

        Args:
            width: picture width in pixels (> 0).
            height: picture height in pixels (> 0).
            size: canvas side in pixels.

        Returns:
            Scale ``min(size / height, size / width)``, the rounded scaled size,
            and the padding split in half (the extra pixel of an odd split
            goes after the picture, as in Ultralytics' ``LetterBox``).
        """
        scale = min(size / height, size / width)
        new_w, new_h = round(width * scale), round(height * scale)
        # Ultralytics rounds (pad - 0.1) so a split of x.5 puts the odd pixel last.
        left = round((size - new_w) / 2 - 0.1)
        top = round((size - new_h) / 2 - 0.1)
        return cls(width, height, size, scale, new_w, new_h, left, top)

    def apply(self, pixels: npt.NDArray[np.uint8], fill: int) -> npt.NDArray[np.uint8]:
        """Scale ``pixels`` (H x W x C) and paste it into a canvas filled with ``fill``."""
        load_opencv()
        import cv2

        scaled = pixels
        if (pixels.shape[1], pixels.shape[0]) != (self.width, self.height):
            scaled = np.asarray(
                cv2.resize(pixels, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
            )
        canvas = np.full((self.size, self.size, pixels.shape[2]), fill, dtype=np.uint8)
        canvas[self.top : self.top + self.height, self.left : self.left + self.width] = scaled
        return canvas

    def to_source(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map ``N x 4`` boxes ``x1, y1, x2, y2`` from canvas pixels to picture pixels, clipped."""
        out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.left) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.top) / self.scale
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.source_width)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.source_height)
        return out


def rgb(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The ``H x W x 3`` RGB view of a picture's pixels (alpha dropped, gray repeated)."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return pixels[:, :, :3]


def as_box(row: npt.NDArray[np.float64]) -> Box:
    """One ``x1, y1, x2, y2`` row as a box rounded to 0.1 pixel (keeps event data short)."""
    x1, y1, x2, y2 = (round(float(v), 1) for v in row)
    return (x1, y1, x2, y2)
