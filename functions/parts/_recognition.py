"""PP-OCRv4 text recognition's pre- and post-processing: line crops in, strings out.

The model (``text_recognition`` in the model repository, from the
``rapidocr-onnxruntime`` wheel) reads one line of text from a crop scaled to
48 px high: BGR, ``(x / 255 - 0.5) / 0.5``, padded on the right with zeros.
It answers, per time step (8 input columns), the code point of the most
likely character (0 for CTC's blank) and its probability; kpipe appends that
greedy step to the graph (``kpipe/local/triton/_transforms.py``), so no 6625-class
softmax crosses the network and the part needs no dictionary.
:func:`ctc_decode` collapses repeats and drops blanks, as PaddleOCR's
``CTCLabelDecode`` does; a string's confidence is the mean probability of its
characters.

Crops are batched as RapidOCR batches them: sorted by aspect ratio, each
batch as wide as its widest line (at least 320 px, PP-OCR's training width),
rounded up to a multiple of 32 so that requests of similar lines share a
shape on Triton.

Example:
    >>> import numpy as np
    >>> ctc_decode(np.array([[0, 72, 72, 0, 105, 0]]), np.full((1, 6), 0.9))
    [('Hi', 0.9)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from functions.parts._boxes import Box
from functions.parts._letterbox import rgb
from functions.parts._opencv import load_opencv

HEIGHT = 48
MIN_WIDTH = 320
WIDTH_STEP = 32
# The widest input a batch gets: a longer line is squeezed to it, so one thin,
# wide box cannot make a tensor of hundreds of megabytes (8 x 3 x 48 x 3200
# floats are 15 MB).
MAX_WIDTH = 3200
# A crop this much taller than wide is a vertical line: read it turned a quarter.
_VERTICAL = 1.5


@dataclass(frozen=True)
class LineBatch:
    """One model input ``[N, 3, 48, W]`` and which crops (by index) it holds, in order."""

    tensor: npt.NDArray[np.float32]
    indices: tuple[int, ...]


def crop_line(pixels: npt.NDArray[np.uint8], box: Box) -> npt.NDArray[np.uint8] | None:
    """The ``H x W x 3`` RGB crop of an axis-aligned box, upright; None if it is empty."""
    height, width = pixels.shape[:2]
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop = rgb(pixels[y1:y2, x1:x2])
    if crop.shape[0] >= _VERTICAL * crop.shape[1]:
        crop = np.rot90(crop)  # as RapidOCR turns vertical lines
    return np.ascontiguousarray(crop)


def _normalized(crop: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.float32]:
    """One crop scaled to 48 px high (at most ``width`` wide), BGR, normalized, zero-padded."""
    load_opencv()
    import cv2

    scaled_w = min(width, max(1, math.ceil(HEIGHT * crop.shape[1] / crop.shape[0])))
    scaled = cv2.resize(crop, (scaled_w, HEIGHT), interpolation=cv2.INTER_LINEAR)
    bgr = np.asarray(scaled, dtype=np.float32)[:, :, ::-1]
    out = np.zeros((3, HEIGHT, width), dtype=np.float32)
    out[:, :, :scaled_w] = (bgr.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def batches(crops: list[npt.NDArray[np.uint8]], max_batch: int) -> list[LineBatch]:
    """The crops grouped into model inputs (see the module docstring)."""
    ratios = [c.shape[1] / c.shape[0] for c in crops]
    order = sorted(range(len(crops)), key=lambda i: ratios[i])
    out = []
    for start in range(0, len(order), max_batch):
        chunk = order[start : start + max_batch]
        widest = max(MIN_WIDTH, math.ceil(HEIGHT * max(ratios[i] for i in chunk)))
        width = min(MAX_WIDTH, math.ceil(widest / WIDTH_STEP) * WIDTH_STEP)
        tensor = np.stack([_normalized(crops[i], width) for i in chunk])
        out.append(LineBatch(tensor, tuple(chunk)))
    return out


def ctc_decode(codepoints: npt.ArrayLike, scores: npt.ArrayLike) -> list[tuple[str, float]]:
    """Greedy CTC: per row, the string (repeats collapsed, blanks dropped) and its confidence.

    Args:
        codepoints: ``N x T`` best code point per step, 0 for the blank.
        scores: ``N x T`` its probability.

    Returns:
        One ``(text, confidence)`` per row; confidence is the mean probability
        of the kept steps (0 for an empty string). Surrounding spaces are stripped.
    """
    codes = np.asarray(codepoints, dtype=np.int64)
    probs = np.asarray(scores, dtype=np.float64)
    results = []
    for row, prob in zip(codes, probs, strict=True):
        keep = row != 0
        keep[1:] &= row[1:] != row[:-1]
        text = "".join(chr(c) for c in row[keep])
        confidence = float(prob[keep].mean()) if keep.any() else 0.0
        results.append((text.strip(), confidence))
    return results
