"""detect_faces: the Haar cascade on real photos."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef
from functions.catalog import default_catalog
from functions.part import Picture, StepContext
from functions.parts.faces import FaceDetector, FaceParams

# Where the cascade finds the astronaut's face (x1, y1, x2, y2).
ASTRONAUT_FACE = (177, 66, 272, 161)
CONTEXT = StepContext(source=ObjectRef("uploads", "photo.jpg"))


def _detect(pixels: npt.NDArray[np.uint8], **params: object) -> dict[str, object]:
    part = default_catalog().get("detect_faces")
    result = part.run([Picture(pixels, "jpeg")], part.parse_params(params), CONTEXT)
    assert result.picture is None  # a detector passes its input through
    return result.metadata


def test_astronaut_has_one_face(astronaut: npt.NDArray[np.uint8]) -> None:
    metadata = _detect(astronaut)
    assert metadata["count"] == 1
    assert metadata["image"] == {"width": 512, "height": 512}
    (face,) = metadata["detections"]  # type: ignore[misc]
    assert face["label"] == "face"
    assert 0.5 < face["score"] <= 1.0
    assert face["box"] == pytest.approx(ASTRONAUT_FACE, abs=3)


def test_cat_has_no_face(cat: npt.NDArray[np.uint8]) -> None:
    assert _detect(cat) == {"detections": [], "count": 0, "image": {"width": 451, "height": 300}}


def test_min_size_above_the_face_finds_nothing(astronaut: npt.NDArray[np.uint8]) -> None:
    assert _detect(astronaut, min_size=200)["count"] == 0


def test_large_picture_is_searched_downscaled(astronaut: npt.NDArray[np.uint8]) -> None:
    big = np.ascontiguousarray(np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1))
    found = FaceDetector(FaceParams()).find(Picture(big, "jpeg"))
    # At this scale the cascade also fires on two small patches of the suit;
    # the face is still the clearest detection, in full-size pixels.
    best = max(found, key=lambda d: d.score)
    assert best.box == pytest.approx(tuple(3 * v for v in ASTRONAUT_FACE), abs=12)


def test_alpha_picture_is_accepted(astronaut: npt.NDArray[np.uint8]) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(FaceDetector(FaceParams())(Picture(rgba, "png"))) == 1


@pytest.mark.parametrize(
    "params",
    [{"min_size": 0}, {"scale_factor": 1.0}, {"scale_factor": 2.5}, {"min_neighbors": 21}],
    ids=["min_size", "scale_low", "scale_high", "neighbors"],
)
def test_params_out_of_range_are_refused(params: dict[str, object]) -> None:
    from functions.errors import BadParams

    with pytest.raises(BadParams):
        default_catalog().get("detect_faces").parse_params(params)
