"""detect_faces' default model, CenterFace, through the real local Triton.

The photos with faces are the face-quality set's (``bench/faces.py``): real
faces from scikit-image composed into real photos, with their true boxes.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from bench.faces import ASTRONAUT_FACE, Scene, face_scenes, iou, match
from eventing.contract import StepOutput
from functions.catalog import default_catalog
from functions.part import Picture, StepContext
from functions.parts._boxes import Box
from functions.parts.faces import FaceDetector, FaceParams

pytestmark = [pytest.mark.slow, pytest.mark.triton]


@cache
def _scenes() -> dict[str, Scene]:
    return {scene.name: scene for scene in face_scenes(quick=True)}


def _dnn(pixels: npt.NDArray[np.uint8], context: StepContext, **params: object) -> list[Box]:
    found = FaceDetector(FaceParams.model_validate(params), context).find(Picture(pixels, "png"))
    return [d.box for d in found]


def _haar(pixels: npt.NDArray[np.uint8]) -> list[Box]:
    return [d.box for d in FaceDetector(FaceParams(model="haar")).find(Picture(pixels, "png"))]


def test_the_astronaut_has_one_face_with_its_landmarks(
    astronaut: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    part = default_catalog().get("detect_faces")
    result = part.run([Picture(astronaut, "jpeg")], part.parse_params({}), inference_context)
    assert result.picture is None
    metadata = result.metadata
    assert metadata["model"] == "centerface"
    assert metadata["count"] == 1
    assert metadata["image"] == {"width": 512, "height": 512}
    (face,) = metadata["detections"]
    assert face["label"] == "face"
    assert 0.5 < face["score"] <= 1.0
    assert iou(tuple(face["box"]), ASTRONAUT_FACE) > 0.7
    x1, y1, x2, y2 = face["box"]
    (lx, ly), (rx, ry), (nx, ny), (ml_x, ml_y), (mr_x, mr_y) = face["landmarks"]
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face["landmarks"])
    assert lx < nx < rx  # the eyes either side of the nose
    assert max(ly, ry) < ny < min(ml_y, mr_y)  # eyes above the nose above the mouth
    assert ml_x < mr_x


# Faces the Haar cascade misses: tilted, in near profile (the cameraman),
# darkened, covered, and 24 px in a 2400 x 1600 photo.
HAAR_MISSES = [
    "astronaut-96px-tilt+30",
    "astronaut-96px-tilt-30",
    "cameraman-original",
    "cameraman-96px-dark",
    "cameraman-96px-scarf",
    "astronaut-24px-plain",
]


@pytest.mark.parametrize("name", HAAR_MISSES)
def test_finds_the_faces_haar_misses(name: str, inference_context: StepContext) -> None:
    scene = _scenes()[name]
    truth = [face.box for face in scene.faces]
    assert None not in match(truth, _dnn(scene.pixels, inference_context))
    assert match(truth, _haar(scene.pixels)) == [None] * len(truth)


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_no_face_in_face_free_photos(name: str, inference_context: StepContext) -> None:
    from skimage import data

    assert _dnn(np.ascontiguousarray(getattr(data, name)()), inference_context) == []


@pytest.mark.parametrize(
    "params",
    [{"zoom": 1.0, "max_side": 1024}, {"zoom": 1.0, "max_side": 2400}],
    ids=["tiles", "whole"],
)
def test_a_small_face_in_a_large_photo(
    params: dict[str, object], inference_context: StepContext
) -> None:
    # 2400 x 1600 with a 24 px face: scaled to 1024 the whole view shrinks it
    # to 10 px; the tiles see it at full size. Both find it in one place.
    scene = _scenes()["astronaut-24px-plain"]
    (truth,) = [face.box for face in scene.faces]
    found = _dnn(scene.pixels, inference_context, **params)
    assert match([truth], found) != [None]


def test_grey_and_alpha_pictures_are_accepted(
    astronaut: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    grey = np.repeat(astronaut.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    for pixels in (grey, rgba):
        (box,) = _dnn(pixels, inference_context)
        assert iou(box, ASTRONAUT_FACE) > 0.7


# After blur with its defaults the detector finds nothing where the faces
# were, even far below its own threshold.
ANONYMISED = [
    "astronaut-original",
    "cameraman-original",
    "astronaut-96px-tilt+30",
    "cameraman-96px-scarf",
]


@pytest.mark.parametrize("name", ANONYMISED)
def test_after_blur_the_detector_finds_no_face(name: str, inference_context: StepContext) -> None:
    scene = _scenes()[name]
    picture = Picture(scene.pixels, "png")
    detect = default_catalog().get("detect_faces")
    found = detect.run([picture], detect.parse_params({}), inference_context).metadata
    truth = [face.box for face in scene.faces]
    assert None not in match(truth, [tuple(d["box"]) for d in found["detections"]])
    blur = default_catalog().get("blur")
    context = StepContext(
        source=inference_context.source,
        upstream={"faces": StepOutput((), found)},
        inference=inference_context.inference,
    )
    result = blur.run([picture], blur.parse_params({}), context)
    assert result.picture is not None
    again = _dnn(result.picture.pixels, inference_context, threshold=0.1)
    assert all(iou(box, face) < 0.1 for box in again for face in truth), again


def test_blur_faces_obscures_the_astronaut(
    astronaut: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    part = default_catalog().get("blur_faces")
    result = part.run([Picture(astronaut, "jpeg")], part.parse_params({}), inference_context)
    assert result.metadata["count"] == result.metadata["blurred"] == 1
    assert result.metadata["model"] == "centerface"
    assert result.picture is not None
    again = _dnn(result.picture.pixels, inference_context, threshold=0.1)
    assert all(iou(box, ASTRONAUT_FACE) < 0.1 for box in again), again
