"""detect_objects' pure parts: letterbox math, YOLO decoding, NMS, params."""

from __future__ import annotations

import numpy as np
import pytest

from functions.errors import BadParams
from functions.parts._letterbox import Letterbox
from functions.parts.objects import PART, decode, nms, preprocess

SHAPES = [
    (451, 300),
    (300, 451),
    (1280, 720),
    (640, 640),
    (320, 320),
    (641, 1),
    (1, 999),
    (333, 333),
]


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_letterbox_matches_ultralytics(width: int, height: int) -> None:
    box = Letterbox.fit(width, height, 640)
    r = min(640 / width, 640 / height)
    assert box.scale == r
    assert (box.width, box.height) == (round(width * r), round(height * r))
    # Padding split evenly; an odd pixel goes to the right / bottom.
    assert box.left == (640 - box.width) // 2
    assert box.top == (640 - box.height) // 2


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_letterbox_places_the_picture(width: int, height: int) -> None:
    box = Letterbox.fit(width, height, 640)
    canvas = box.apply(np.full((height, width, 3), 7, dtype=np.uint8), fill=114)
    assert canvas.shape == (640, 640, 3)
    inside = canvas[box.top : box.top + box.height, box.left : box.left + box.width]
    assert (inside == 7).all()
    assert (canvas == 7).sum() == inside.size


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_to_source_inverts_the_letterbox(width: int, height: int) -> None:
    box = Letterbox.fit(width, height, 640)
    picture = [box.left, box.top, box.left + box.width, box.top + box.height]
    np.testing.assert_allclose(
        box.to_source(np.array([picture])), [[0, 0, width, height]], atol=1.0
    )
    # A box covering the whole canvas is clipped to the picture.
    np.testing.assert_allclose(box.to_source(np.array([[0, 0, 640, 640]])), [[0, 0, width, height]])


def test_preprocess_is_rgb_unit_range() -> None:
    pixels = np.zeros((300, 451, 4), dtype=np.uint8)
    pixels[..., 0] = 255
    tensor, box = preprocess(pixels)
    assert tensor.shape == (1, 3, 640, 640)
    assert tensor[0, :, 320, 320].tolist() == [1.0, 0.0, 0.0]
    assert tensor[0, :, 0, 0] == pytest.approx([114 / 255] * 3)
    assert box.top == 107


def yolo_output(
    rows: list[tuple[float, float, float, float, int, float]], classes: int = 3
) -> np.ndarray:
    out = np.zeros((1, 4 + classes, 50), dtype=np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + cls, i] = score
    return out


IDENTITY = Letterbox.fit(640, 640, 640)


def test_decode_converts_centre_boxes_and_sorts() -> None:
    out = yolo_output([(100, 100, 20, 40, 1, 0.5), (300, 200, 100, 50, 0, 0.8)])
    boxes, scores, ids = decode(out, IDENTITY)
    np.testing.assert_allclose(boxes, [[250, 175, 350, 225], [90, 80, 110, 120]])
    np.testing.assert_allclose(scores, [0.8, 0.5])
    assert ids.tolist() == [0, 1]


def test_decode_nms_is_per_class() -> None:
    out = yolo_output(
        [(100, 100, 50, 50, 0, 0.9), (102, 100, 50, 50, 0, 0.7), (102, 100, 50, 50, 1, 0.6)]
    )
    _, scores, ids = decode(out, IDENTITY)
    assert ids.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [0.9, 0.6])


@pytest.mark.parametrize(
    ("kwargs", "expected_ids"),
    [
        ({"confidence": 0.65}, [0, 2]),
        ({"allowed": {1, 2}}, [2, 1]),
        ({"max_detections": 1}, [0]),
        ({"confidence": 0.95}, []),
    ],
)
def test_decode_filters(kwargs: dict[str, object], expected_ids: list[int]) -> None:
    out = yolo_output(
        [(100, 100, 50, 50, 0, 0.9), (300, 300, 50, 50, 1, 0.6), (500, 500, 50, 50, 2, 0.7)]
    )
    _, _, ids = decode(out, IDENTITY, **kwargs)  # type: ignore[arg-type]
    assert ids.tolist() == expected_ids


def test_nms_keeps_disjoint_and_drops_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.5, 0.9, 0.3, 0.1])
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


@pytest.mark.parametrize(
    "params",
    [
        {"classes": ["unicorn"]},
        {"labels": ["a", "b"], "classes": ["cat"]},
        {"confidence": 2},
        {"model": "../etc"},
        {"max_detections": 0},
    ],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        PART.parse_params(params)


def test_custom_labels_allow_their_classes() -> None:
    params = PART.parse_params({"labels": ["helmet", "vest"], "classes": ["vest"]})
    assert params.names == ("helmet", "vest")  # type: ignore[attr-defined]


def test_part_shape() -> None:
    assert PART.name == "detect_objects"
    assert len(PART.labels) == 80
    assert PART.output == "detections"
