"""blur and blur_faces: only the padded boxes change, and they lose their detail."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef, StepOutput
from functions.catalog import default_catalog
from functions.part import Picture, StepContext
from functions.parts.blur import BlurStyle, blur_regions

FACE = (177, 66, 272, 161)
SOURCE = ObjectRef("uploads", "astronaut.jpg")


def _sharpness(pixels: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> float:
    """Laplacian variance inside ``box``: high for detail, low once blurred."""
    x1, y1, x2, y2 = box
    gray = cv2.cvtColor(np.ascontiguousarray(pixels[y1:y2, x1:x2, :3]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _outside(pixels: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> npt.NDArray[Any]:
    x1, y1, x2, y2 = box
    mask = np.ones(pixels.shape[:2], bool)
    mask[y1:y2, x1:x2] = False
    return pixels[mask]


def _faces_upstream(
    box: tuple[float, ...] = FACE, size: int = 512, label: str = "face", score: float = 0.99
) -> dict[str, StepOutput]:
    detection = {"label": label, "score": score, "box": list(box)}
    metadata = {"detections": [detection], "count": 1, "image": {"width": size, "height": size}}
    return {"faces": StepOutput((SOURCE,), metadata)}


def _blur(
    pixels: npt.NDArray[np.uint8], upstream: dict[str, StepOutput], **params: object
) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
    part = default_catalog().get("blur")
    context = StepContext(source=SOURCE, upstream=upstream)
    result = part.run([Picture(pixels, "jpeg")], part.parse_params(params), context)
    assert result.picture is not None
    return result.picture.pixels, result.metadata


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_blur_obscures_only_the_padded_box(astronaut: npt.NDArray[np.uint8], method: str) -> None:
    out, metadata = _blur(astronaut, _faces_upstream(), method=method, padding=0.1)
    assert metadata == {"blurred": 1, "labels": ["face"]}
    padded = (167, 56, 282, 171)  # FACE grown by 10 % of its 95 px per side
    assert np.array_equal(_outside(out, padded), _outside(astronaut, padded))
    assert not np.array_equal(out[56:171, 167:282], astronaut[56:171, 167:282])


def test_blur_removes_detail(astronaut: npt.NDArray[np.uint8]) -> None:
    out, _ = _blur(astronaut, _faces_upstream(), method="blur")
    assert _sharpness(out, FACE) < _sharpness(astronaut, FACE) / 5


def test_pixelate_leaves_a_few_blocks(astronaut: npt.NDArray[np.uint8]) -> None:
    out, _ = _blur(astronaut, _faces_upstream(), method="pixelate", strength=25)
    x1, y1, x2, y2 = FACE
    colours = {tuple(p) for p in out[y1:y2, x1:x2].reshape(-1, 3).tolist()}
    assert len(colours) <= 100  # about 8 x 8 blocks (partly cut by the box)


def test_boxes_are_rescaled_to_the_current_picture(astronaut: npt.NDArray[np.uint8]) -> None:
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    out, _ = _blur(half, _faces_upstream(), padding=0.0)  # boxes are for 512 x 512
    scaled = (88, 33, 136, 81)
    assert _sharpness(out, scaled) < _sharpness(half, scaled) / 5
    assert np.array_equal(_outside(out, scaled), _outside(half, scaled))


@pytest.mark.parametrize(
    "params",
    [{"labels": ["licence_plate"]}, {"min_score": 0.995}],
    ids=["other-label", "low-score"],
)
def test_filtered_out_detections_leave_the_picture_alone(
    astronaut: npt.NDArray[np.uint8], params: dict[str, object]
) -> None:
    out, metadata = _blur(astronaut, _faces_upstream(), **params)
    assert metadata["blurred"] == 0
    assert np.array_equal(out, astronaut)


def test_detections_of_every_upstream_step_are_used(astronaut: npt.NDArray[np.uint8]) -> None:
    upstream = {
        **_faces_upstream(),
        "text": _faces_upstream((10, 10, 60, 40), label="text")["faces"],
    }
    out, metadata = _blur(astronaut, upstream, labels=["face", "text"])
    assert metadata["blurred"] == 2
    assert _sharpness(out, (10, 10, 60, 40)) < _sharpness(astronaut, (10, 10, 60, 40))


def test_malformed_detections_are_skipped(astronaut: npt.NDArray[np.uint8]) -> None:
    upstream = _faces_upstream()
    upstream["broken"] = StepOutput((), {"detections": [{"label": "face", "box": [1, 2]}]})
    _, metadata = _blur(astronaut, upstream)
    assert metadata["blurred"] == 1


def test_region_on_the_edge_is_clipped(astronaut: npt.NDArray[np.uint8]) -> None:
    out = blur_regions(astronaut, [(-50, -50, 40, 30), (600, 600, 700, 700)], BlurStyle())
    assert np.array_equal(out[40:, :], astronaut[40:, :])
    assert not np.array_equal(out[:30, :40], astronaut[:30, :40])


@pytest.mark.parametrize(
    "params",
    [{"labels": []}, {"strength": 0}, {"padding": 1.5}, {"method": "smudge"}, {"radius": 3}],
    ids=["no-labels", "strength", "padding", "method", "unknown"],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    from functions.errors import BadParams

    with pytest.raises(BadParams):
        default_catalog().get("blur").parse_params(params)


def test_blur_faces_finds_and_blurs_the_face(astronaut: npt.NDArray[np.uint8]) -> None:
    part = default_catalog().get("blur_faces")
    params = part.parse_params({"padding": 0.0})
    result = part.run([Picture(astronaut, "jpeg")], params, StepContext(source=SOURCE))
    assert result.picture is not None
    assert result.metadata["count"] == result.metadata["blurred"] == 1
    (face,) = result.metadata["detections"]
    box = tuple(face["box"])
    assert box == pytest.approx(FACE, abs=3)
    out = result.picture.pixels
    assert _sharpness(out, box) < _sharpness(astronaut, box) / 5
    assert np.array_equal(_outside(out, box), _outside(astronaut, box))


def test_blur_faces_params_combine_detector_and_style() -> None:
    schema = default_catalog().get("blur_faces").schema()
    assert {"method", "strength", "padding", "min_size", "scale_factor", "min_neighbors"} == set(
        schema["properties"]
    )
