"""detect_objects: find objects with an Ultralytics YOLOv8 / YOLO11 detector on Triton.

Any detector exported with ``yolo export format=onnx`` works: input
``images`` ``[1, 3, 640, 640]`` (RGB, ``/ 255``, letterboxed with gray 114),
output ``output0`` ``[1, 4 + classes, anchors]`` holding ``cx, cy, w, h`` in
letterboxed pixels and one score per class (v8 and 11 have no objectness).
The part decodes that like Ultralytics' ``non_max_suppression``: best class
per anchor, confidence threshold, class-wise NMS, then boxes mapped back to
the picture's own pixels.

Class names: the model repository is not mounted where parts run, so the
part carries the COCO-80 names (what ``yolov8n`` and every COCO-trained
Ultralytics model predict). A model trained on other classes is used by
passing its names, in class-id order, as ``labels``.

Example:
    >>> PART.parse_params({"classes": ["cat", "dog"], "confidence": 0.4}).iou
    0.45
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from functions.errors import BadParams
from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, detection_metadata
from functions.parts._coco import COCO_LABELS
from functions.parts._letterbox import Letterbox, as_box, rgb
from functions.parts._nms import nms

if TYPE_CHECKING:
    import numpy.typing as npt

INPUT = "images"
OUTPUT = "output0"
SIZE = 640  # the square Ultralytics exports at by default (imgsz=640)
_FILL = 114  # Ultralytics' letterbox gray


class ObjectParams(Params):
    """Params of detect_objects."""

    model: str = Field(
        "yolov8n", pattern=r"^[A-Za-z0-9._-]+$", description="Triton model name of the detector."
    )
    confidence: float = Field(0.25, ge=0, le=1, description="Minimum class score to keep.")
    iou: float = Field(0.45, ge=0, le=1, description="IoU above which NMS drops a box.")
    max_detections: int = Field(300, ge=1, le=1000, description="Keep at most this many boxes.")
    labels: tuple[str, ...] | None = Field(
        None, min_length=1, description="Class names of a custom model, in class-id order."
    )
    classes: tuple[str, ...] | None = Field(
        None, min_length=1, description="Keep only these labels (default: all)."
    )

    @field_validator("classes")
    @classmethod
    def _known_classes(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        names = info.data.get("labels") or COCO_LABELS
        unknown = sorted(set(value or ()) - set(names))
        if unknown:
            raise ValueError(f"unknown labels {unknown}")
        return value

    @property
    def names(self) -> tuple[str, ...]:
        """The class names in class-id order."""
        return self.labels or COCO_LABELS


def preprocess(pixels: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """The model input ``[1, 3, 640, 640]`` for a picture, and its letterbox."""
    picture = rgb(pixels)
    box = Letterbox.fit(picture.shape[1], picture.shape[0], SIZE)
    canvas = box.apply(picture, _FILL).astype(np.float32) / 255.0
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), box


def decode(
    output: npt.ArrayLike,
    letterbox: Letterbox,
    *,
    confidence: float = 0.25,
    iou: float = 0.45,
    max_detections: int = 300,
    allowed: set[int] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Boxes, scores and class ids from a YOLOv8/11 output ``[1, 4 + classes, anchors]``.

    Args:
        output: the raw ``output0`` tensor.
        letterbox: how the picture was fitted into the model input.
        confidence: keep anchors whose best class score is above this.
        iou: class-wise NMS threshold.
        max_detections: keep at most this many, best first.
        allowed: class ids to keep (None: all).

    Returns:
        ``N x 4`` boxes ``x1, y1, x2, y2`` in the picture's pixels (clipped),
        ``N`` scores and ``N`` class ids, best score first.
    """
    rows = np.asarray(output, dtype=np.float64)[0].T  # anchors x (4 + classes)
    class_scores = rows[:, 4:]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), class_ids]
    keep = scores > confidence
    if allowed is not None:
        keep &= np.isin(class_ids, list(allowed))
    rows, scores, class_ids = rows[keep], scores[keep], class_ids[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    # Shift each class to its own region of the plane so one NMS pass never
    # lets boxes of different classes suppress each other (Ultralytics' trick).
    shifted = boxes + (class_ids * (4 * letterbox.size))[:, None]
    kept = nms(shifted, scores, iou)[:max_detections]
    return letterbox.to_source(boxes[kept]), scores[kept], class_ids[kept]


def detect_objects(
    pictures: list[Picture], params: ObjectParams, context: StepContext
) -> PartResult:
    """Find objects in the first picture (metadata only; the picture passes through).

    Raises:
        BadParams: the model scores a different number of classes than ``labels`` names.
        ModelNotReady: Triton or the model is not available.
        InferenceFailed: Triton rejected the request.
    """
    picture = pictures[0]
    tensor, letterbox = preprocess(picture.pixels)
    output = context.inference_client().infer(
        params.model, {INPUT: tensor}, [OUTPUT], traceparent=context.traceparent
    )[OUTPUT]
    names = params.names
    if output.ndim != 3 or output.shape[1] - 4 != len(names):
        raise BadParams(
            PART.name,
            f"labels: model {params.model} returned {OUTPUT} of shape {list(output.shape)}, "
            f"expected [1, {4 + len(names)}, anchors] for {len(names)} labels",
            field="labels",
        )
    allowed = {names.index(c) for c in params.classes} if params.classes else None
    boxes, scores, class_ids = decode(
        output,
        letterbox,
        confidence=params.confidence,
        iou=params.iou,
        max_detections=params.max_detections,
        allowed=allowed,
    )
    found = [
        Detection(names[c], float(s), as_box(b))
        for b, s, c in zip(boxes, scores, class_ids, strict=True)
    ]
    metadata = detection_metadata(found, picture.width, picture.height)
    return PartResult(picture=None, metadata={**metadata, "model": params.model})


PART = Part(
    name="detect_objects",
    group=Group.AI,
    summary="Find objects (COCO-80 by default) with a YOLOv8/YOLO11 detector on Triton.",
    params=ObjectParams,
    run=detect_objects,
    output="detections",
    labels=COCO_LABELS,
    uses_inference=True,
)
