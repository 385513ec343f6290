"""detect_faces without Triton: params, the Haar model, CenterFace's decoding and the views.

The CenterFace model itself runs on the real local Triton in
``tests/triton/test_detect_faces_on_triton.py``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef
from functions.catalog import default_catalog
from functions.errors import BadParams
from functions.part import Picture, StepContext
from functions.parts._centerface import CELL, decode, to_tensor
from functions.parts._views import OVERLAP, TILE, plan_views
from functions.parts.faces import FaceDetector, FaceParams

# Where the cascade finds the astronaut's face (x1, y1, x2, y2).
ASTRONAUT_FACE = (177, 66, 272, 161)
CONTEXT = StepContext(source=ObjectRef("uploads", "photo.jpg"))
HAAR = {"model": "haar"}


def _detect(pixels: npt.NDArray[np.uint8], **params: object) -> dict[str, object]:
    part = default_catalog().get("detect_faces")
    result = part.run([Picture(pixels, "jpeg")], part.parse_params(params), CONTEXT)
    assert result.picture is None  # a detector passes its input through
    return result.metadata


def test_the_dnn_is_the_default() -> None:
    params = default_catalog().get("detect_faces").parse_params({})
    assert isinstance(params, FaceParams)
    assert params.model == "centerface"
    assert default_catalog().get("detect_faces").uses_inference


def test_the_dnn_needs_an_inference_client(astronaut: npt.NDArray[np.uint8]) -> None:
    with pytest.raises(RuntimeError, match="inference client"):
        _detect(astronaut)


def test_haar_finds_the_astronaut(astronaut: npt.NDArray[np.uint8]) -> None:
    metadata = _detect(astronaut, **HAAR)
    assert metadata["count"] == 1
    assert metadata["image"] == {"width": 512, "height": 512}
    assert metadata["model"] == "haar"
    (face,) = metadata["detections"]  # type: ignore[misc]
    assert face["label"] == "face"
    assert 0.5 < face["score"] <= 1.0
    assert face["box"] == pytest.approx(ASTRONAUT_FACE, abs=3)
    assert "landmarks" not in face  # the cascade gives none


def test_haar_finds_no_face_on_the_cat(cat: npt.NDArray[np.uint8]) -> None:
    assert _detect(cat, **HAAR) == {
        "detections": [],
        "count": 0,
        "image": {"width": 451, "height": 300},
        "model": "haar",
    }


def test_haar_min_size_above_the_face_finds_nothing(astronaut: npt.NDArray[np.uint8]) -> None:
    assert _detect(astronaut, min_size=200, **HAAR)["count"] == 0


def test_haar_searches_a_large_picture_downscaled(astronaut: npt.NDArray[np.uint8]) -> None:
    big = np.ascontiguousarray(np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1))
    found = FaceDetector(FaceParams(model="haar")).find(Picture(big, "jpeg"))
    # At this scale the cascade also fires on two small patches of the suit;
    # the face is still the clearest detection, in full-size pixels.
    best = max(found, key=lambda d: d.score)
    assert best.box == pytest.approx(tuple(3 * v for v in ASTRONAUT_FACE), abs=12)


def test_haar_accepts_alpha(astronaut: npt.NDArray[np.uint8]) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(FaceDetector(FaceParams(model="haar"))(Picture(rgba, "png"))) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"min_size": 0},
        {"scale_factor": 1.0},
        {"scale_factor": 2.5},
        {"min_neighbors": 21},
        {"model": "yolo"},
        {"threshold": 0.0},
        {"zoom": 0.5},
        {"max_side": 1000},
    ],
    ids=["min_size", "scale_low", "scale_high", "neighbors", "model", "threshold", "zoom", "side"],
)
def test_params_out_of_range_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        default_catalog().get("detect_faces").parse_params(params)


def _maps(
    faces: list[tuple[int, int, float, float, float]], cells: tuple[int, int] = (40, 60)
) -> tuple[npt.NDArray[np.float32], ...]:
    """CenterFace outputs (one batch item) with a face per ``(row, col, height, width, score)``.

    Each face lights its centre cell and, less, the eight around it (as the
    model does); offsets are 0.25 cell down and right; landmarks sit at
    fixed fractions of the box.
    """
    rows, cols = cells
    heat = np.zeros((1, rows, cols), np.float32)
    scale = np.zeros((2, rows, cols), np.float32)
    offset = np.full((2, rows, cols), 0.25, np.float32)
    marks = np.zeros((10, rows, cols), np.float32)
    for row, col, height, width, score in faces:
        heat[0, row - 1 : row + 2, col - 1 : col + 2] = score * 0.6
        heat[0, row, col] = score
        scale[0, row - 1 : row + 2, col - 1 : col + 2] = math.log(height / CELL)
        scale[1, row - 1 : row + 2, col - 1 : col + 2] = math.log(width / CELL)
        for k, (fy, fx) in enumerate(
            [(0.4, 0.3), (0.4, 0.7), (0.6, 0.5), (0.8, 0.35), (0.8, 0.65)]
        ):
            marks[2 * k, row - 1 : row + 2, col - 1 : col + 2] = fy
            marks[2 * k + 1, row - 1 : row + 2, col - 1 : col + 2] = fx
    return heat, scale, offset, marks


def test_decode_reads_box_and_landmarks() -> None:
    faces = decode(*_maps([(10, 20, 48.0, 40.0, 0.9)]), threshold=0.5)
    assert len(faces) == 1
    cx, cy = (20 + 0.25 + 0.5) * CELL, (10 + 0.25 + 0.5) * CELL
    np.testing.assert_allclose(faces.boxes[0], [cx - 20, cy - 24, cx + 20, cy + 24])
    assert faces.scores[0] == pytest.approx(0.9)
    x1, y1 = cx - 20, cy - 24
    np.testing.assert_allclose(faces.landmarks[0, :2], [x1 + 0.3 * 40, y1 + 0.4 * 48])
    np.testing.assert_allclose(faces.landmarks[0, 8:], [x1 + 0.65 * 40, y1 + 0.8 * 48])


def test_decode_keeps_one_box_per_face_and_orders_by_score() -> None:
    faces = decode(*_maps([(10, 10, 32, 32, 0.6), (30, 45, 64, 56, 0.95)]), threshold=0.3)
    assert faces.scores.tolist() == pytest.approx([0.95, 0.6])


def test_decode_threshold_drops_faint_faces() -> None:
    maps = _maps([(10, 10, 32, 32, 0.4), (30, 45, 64, 56, 0.95)])
    assert len(decode(*maps, threshold=0.5)) == 1
    assert len(decode(*maps, threshold=0.3)) == 2


def test_decode_nms_merges_overlapping_peaks() -> None:
    # Two peaks two cells apart with the same large box: one face.
    faces = decode(*_maps([(20, 20, 120, 100, 0.9), (20, 22, 120, 100, 0.8)]), threshold=0.3)
    assert len(faces) == 1


def test_decode_of_an_empty_heatmap() -> None:
    faces = decode(*_maps([]), threshold=0.1)
    assert faces.boxes.shape == (0, 4)
    assert faces.landmarks.shape == (0, 10)


def test_tensor_is_rgb_nchw_unnormalised() -> None:
    canvas = np.zeros((64, 96, 3), np.uint8)
    canvas[..., 0] = 200
    tensor = to_tensor([canvas, canvas])
    assert tensor.shape == (2, 3, 64, 96)
    assert tensor.dtype == np.float32
    assert tensor[0, 0, 5, 5] == 200.0
    assert tensor[1, 2, 5, 5] == 0.0


@pytest.mark.parametrize(
    ("width", "height", "zoom", "max_side", "scale"),
    [(800, 600, 1.0, 1024, 1.0), (300, 200, 2.0, 1024, 2.0), (2000, 1000, 1.0, 1024, 0.512)],
)
def test_the_whole_view_keeps_the_aspect_ratio(
    width: int, height: int, zoom: float, max_side: int, scale: float
) -> None:
    whole = plan_views(width, height, zoom, max_side)[0]
    assert whole.region == (0, 0, width, height)
    assert whole.scale == pytest.approx(scale)
    assert whole.width % 32 == 0
    assert whole.height % 32 == 0
    assert whole.width - 32 < width * scale <= whole.width
    assert whole.height - 32 < height * scale <= whole.height
    crop = whole.crop(np.full((height, width, 3), 9, np.uint8))
    assert crop.shape == (whole.height, whole.width, 3)
    # the picture sits at the top left; the padding is black
    assert (crop[: round(height * scale) - 1, : round(width * scale) - 1] == 9).all()
    assert (crop[:, round(width * scale) + 1 :] == 0).all()


def test_a_picture_seen_whole_at_the_zoom_has_no_tiles() -> None:
    assert len(plan_views(500, 400, 2.0, 1024)) == 1


@pytest.mark.parametrize(("width", "height", "zoom"), [(2400, 1600, 1.0), (1024, 768, 2.0)])
def test_tiles_cover_the_picture_with_overlap(width: int, height: int, zoom: float) -> None:
    views = plan_views(width, height, zoom, 1024)
    tiles = views[1:]
    assert tiles
    assert {(t.width, t.height, t.scale) for t in tiles} == {(TILE, TILE, zoom)}
    covered = np.zeros((height, width), bool)
    for tile in tiles:
        left, top, right, bottom = tile.region
        assert (right - left) * zoom <= TILE
        covered[top:bottom, left:right] = True
    assert covered.all()
    # Neighbouring tiles overlap by at least OVERLAP model pixels.
    lefts = sorted({t.region[0] for t in tiles})
    rights = sorted({t.region[2] for t in tiles})
    assert all((r - nl) * zoom >= OVERLAP for nl, r in zip(lefts[1:], rights, strict=False))


def test_a_tile_drops_faces_cut_by_its_inner_edges() -> None:
    tile = next(t for t in plan_views(2400, 1600, 1.0, 1024)[1:] if all(t.inner_edges))
    right = (tile.region[2] - tile.region[0]) * tile.scale
    boxes = np.array([[0.0, 50, 40, 90], [100, 100, 140, 150], [right - 30, 100, right, 150]])
    assert tile.cut(boxes).tolist() == [True, False, True]
    # The whole-picture view has no inner edge.
    assert not plan_views(2400, 1600, 1.0, 1024)[0].cut(boxes).any()


def test_view_maps_back_to_source_pixels() -> None:
    tile = plan_views(1024, 768, 2.0, 1024)[2]
    back = tile.to_source(np.array([[0.0, 0.0, 64.0, 32.0]]))
    left, top = tile.region[:2]
    np.testing.assert_allclose(back, [[left, top, left + 32, top + 16]])
