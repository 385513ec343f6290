"""detect_objects through the real local Triton, with a YOLO model of known output.

The expected boxes are computed here from the letterbox definition (scale
``r = min(640 / h, 640 / w)``, padding split evenly, the odd pixel after), not
with the part's own helpers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from functions.errors import BadParams
from functions.part import Picture, StepContext
from functions.parts.objects import PART
from tests.triton.yolo_model import KNOWN_ANCHORS, Anchor

pytestmark = [pytest.mark.slow, pytest.mark.triton]

CAT, CAT_DUPLICATE, DOG, PERSON, CAR, CHAIR = KNOWN_ANCHORS


def expected_box(anchor: Anchor, width: int, height: int) -> list[float]:
    r = min(640 / height, 640 / width)
    pad_x = (640 - round(width * r)) // 2
    pad_y = (640 - round(height * r)) // 2
    x1 = (anchor.cx - anchor.w / 2 - pad_x) / r
    y1 = (anchor.cy - anchor.h / 2 - pad_y) / r
    x2 = (anchor.cx + anchor.w / 2 - pad_x) / r
    y2 = (anchor.cy + anchor.h / 2 - pad_y) / r
    return [
        min(max(x1, 0), width),
        min(max(y1, 0), height),
        min(max(x2, 0), width),
        min(max(y2, 0), height),
    ]


def detect(
    pixels: npt.NDArray[np.uint8], context: StepContext, **params: object
) -> list[dict[str, object]]:
    result = PART.run([Picture(pixels, "jpeg")], PART.parse_params(params), context)
    assert result.metadata["model"] == "yolov8n"
    assert result.metadata["image"] == {"width": pixels.shape[1], "height": pixels.shape[0]}
    detections: list[dict[str, object]] = result.metadata["detections"]
    assert result.metadata["count"] == len(detections)
    return detections


def assert_found(
    detections: list[dict[str, object]],
    anchors: list[Anchor],
    label_of: dict[int, str],
    size: tuple[int, int],
) -> None:
    assert [d["label"] for d in detections] == [label_of[a.class_id] for a in anchors]
    assert [d["score"] for d in detections] == pytest.approx([a.score for a in anchors], abs=1e-4)
    for d, a in zip(detections, anchors, strict=True):
        assert d["box"] == pytest.approx(expected_box(a, *size), abs=0.06)


LABELS = {0: "person", 2: "car", 15: "cat", 16: "dog", 56: "chair"}


@pytest.fixture(params=[(451, 300), (1280, 720), (300, 451)], ids=lambda s: f"{s[0]}x{s[1]}")
def picture(request: pytest.FixtureRequest) -> npt.NDArray[np.uint8]:
    width, height = request.param
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_boxes_are_in_picture_pixels(
    picture: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    size = (picture.shape[1], picture.shape[0])
    detections = detect(picture, inference_context)
    # The duplicate cat is suppressed; the dog in the same place is another class;
    # the car is under the default confidence; best score first.
    assert_found(detections, [CAT, DOG, CHAIR, PERSON], LABELS, size)


def test_the_cat_photo(cat: npt.NDArray[np.uint8], inference_context: StepContext) -> None:
    assert_found(detect(cat, inference_context, classes=["cat"]), [CAT], LABELS, (451, 300))


def test_confidence_filter(cat: npt.NDArray[np.uint8], inference_context: StepContext) -> None:
    assert [d["label"] for d in detect(cat, inference_context, confidence=0.1)] == [
        "cat",
        "dog",
        "chair",
        "person",
        "car",
    ]
    assert [d["label"] for d in detect(cat, inference_context, confidence=0.7)] == ["cat"]


def test_iou_threshold_keeps_the_duplicate_when_loose(
    cat: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    labels = [d["label"] for d in detect(cat, inference_context, iou=0.9)]
    assert labels == ["cat", "cat", "dog", "chair", "person"]


def test_classes_and_max_detections(
    cat: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    found = detect(cat, inference_context, classes=["dog", "person"], max_detections=1)
    assert [d["label"] for d in found] == ["dog"]


def test_labels_must_match_the_model(
    cat: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    with pytest.raises(BadParams, match=r"expected \[1, 6, anchors\] for 2 labels"):
        detect(cat, inference_context, labels=["a", "b"])


def test_missing_model_is_not_ready(cat: npt.NDArray[np.uint8], triton_url: str) -> None:
    from eventing.contract import ObjectRef
    from functions.errors import ModelNotReady
    from functions.inference import TritonInferenceClient

    with TritonInferenceClient(triton_url) as client:
        context = StepContext(source=ObjectRef("b", "k"), inference=lambda: client)
        with pytest.raises(ModelNotReady, match="model yolo11x not ready on Triton"):
            detect(cat, context, model="yolo11x")
