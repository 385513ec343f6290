"""blur and blur_faces: only the padded boxes change, they lose their detail, and with
the defaults nothing recognisable of a face is left."""

from __future__ import annotations

from functools import cache
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


@pytest.mark.parametrize("method", ["smudge", "blur", "pixelate"])
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
    out = blur_regions(
        astronaut, [(-50, -50, 40, 30), (600, 600, 700, 700)], BlurStyle(padding=0.1)
    )
    assert np.array_equal(out[40:, :], astronaut[40:, :])
    assert not np.array_equal(out[:30, :40], astronaut[:30, :40])


@pytest.mark.parametrize(
    "params",
    [{"labels": []}, {"strength": 0}, {"padding": 1.5}, {"method": "smear"}, {"radius": 3}],
    ids=["no-labels", "strength", "padding", "method", "unknown"],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    from functions.errors import BadParams

    with pytest.raises(BadParams):
        default_catalog().get("blur").parse_params(params)


def test_blur_faces_finds_and_blurs_the_face(astronaut: npt.NDArray[np.uint8]) -> None:
    # The cascade runs in process; the default model (on Triton) is tested in tests/triton.
    part = default_catalog().get("blur_faces")
    params = part.parse_params({"padding": 0.0, "model": "haar"})
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
    detector = set(default_catalog().get("detect_faces").schema()["properties"])
    assert {"method", "strength", "padding"} | detector == set(schema["properties"])
    assert default_catalog().get("blur_faces").uses_inference


def test_the_same_box_from_two_steps_is_obscured_once(astronaut: npt.NDArray[np.uint8]) -> None:
    # detect_text's line and read_text's reading of it share a box and a label.
    upstream = {**_faces_upstream(), "again": _faces_upstream(score=0.5)["faces"]}
    _, metadata = _blur(astronaut, upstream)
    assert metadata["blurred"] == 1


def test_smudge_takes_nothing_from_inside_the_region(astronaut: npt.NDArray[np.uint8]) -> None:
    style = BlurStyle()  # the defaults: smudge, padding 0.2
    padded = (158, 47, 291, 180)  # FACE grown by 20 % of its 95 px per side (rounded out)
    other = astronaut.copy()
    rng = np.random.default_rng(0)
    other[47:180, 158:291] = rng.integers(0, 256, other[47:180, 158:291].shape, dtype=np.uint8)
    assert style.method == "smudge"
    assert np.array_equal(
        blur_regions(astronaut, [FACE], style), blur_regions(other, [FACE], style)
    )
    out = blur_regions(astronaut, [FACE], style)
    assert np.array_equal(_outside(out, padded), _outside(astronaut, padded))


def test_smudge_of_the_whole_picture_is_flat_grey(astronaut: npt.NDArray[np.uint8]) -> None:
    out = blur_regions(astronaut, [(0, 0, 512, 512)], BlurStyle())
    assert (out == 128).all()


# Recognisability: each of the 100 real faces of scikit-image's LFW subset,
# 4x enlarged into a 200 x 200 crop of the coffee photo, obscured in the box a
# detector gives it (12 px inside the face on each side), then identified by
# nearest neighbour (correlation of 25 x 25 grey thumbnails of the face's
# square) in a gallery of the 100 faces. "naive" matches against the
# untouched faces; "parrot" knows the method and matches against another
# shot of each face (turned 3 degrees, 6 % larger, 10 % brighter) obscured
# the same way. Chance is 1 in 100.
_SIDE = 100
_FACE_BOX = (62, 62, 138, 138)


@cache
def _lfw_shots(other: bool) -> list[npt.NDArray[np.uint8]]:
    from skimage import data

    background = cv2.resize(data.coffee(), (2 * _SIDE, 2 * _SIDE), interpolation=cv2.INTER_AREA)
    shots = []
    for face in (data.lfw_subset()[:100] * 255).astype(np.uint8):
        if other:
            turn = cv2.getRotationMatrix2D((12, 12), 3, 1.06)
            face = cv2.warpAffine(face, turn, (25, 25), borderMode=cv2.BORDER_REPLICATE)
            face = np.clip(face.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
        big = cv2.resize(face, (_SIDE, _SIDE), interpolation=cv2.INTER_CUBIC)
        canvas = background.copy()
        canvas[_SIDE // 2 : _SIDE // 2 + _SIDE, _SIDE // 2 : _SIDE // 2 + _SIDE] = big[:, :, None]
        shots.append(canvas)
    return shots


def _identified(probes: list[npt.NDArray[np.uint8]], gallery: list[npt.NDArray[np.uint8]]) -> float:
    """Share of probes whose nearest gallery face (by thumbnail correlation) is their own."""

    def thumbnails(pictures: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float64]:
        rows = []
        for picture in pictures:
            face = picture[_SIDE // 2 : _SIDE // 2 + _SIDE, _SIDE // 2 : _SIDE // 2 + _SIDE]
            gray = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY)
            row = cv2.resize(gray, (25, 25), interpolation=cv2.INTER_AREA).astype(np.float64)
            row = row.ravel() - row.mean()
            rows.append(row / (np.linalg.norm(row) + 1e-9))
        return np.stack(rows)

    scores = thumbnails(probes) @ thumbnails(gallery).T
    return float((scores.argmax(axis=1) == np.arange(len(probes))).mean())


def test_the_matcher_identifies_untouched_faces() -> None:
    assert _identified(_lfw_shots(False), _lfw_shots(True)) == 1.0


def _obscured(style: BlurStyle, other: bool) -> list[npt.NDArray[np.uint8]]:
    return [blur_regions(shot, [_FACE_BOX], style) for shot in _lfw_shots(other)]


def test_default_blur_leaves_no_face_recognisable() -> None:
    style = default_catalog().get("blur").parse_params({"labels": ["face"]})
    assert isinstance(style, BlurStyle)
    probes = _obscured(style, other=False)
    assert _identified(probes, _lfw_shots(False)) <= 0.02
    assert _identified(probes, _obscured(style, other=True)) <= 0.02


@pytest.mark.parametrize(
    ("method", "strength", "parrot_at_least"),
    [("blur", 25, 0.9), ("blur", 100, 0.15), ("pixelate", 100, 0.15)],
)
def test_gaussian_blur_and_pixelation_stay_recognisable(
    method: str, strength: int, parrot_at_least: float
) -> None:
    # Why smudge is the default: a blurred or pixelated face keeps its coarse
    # light and dark layout, which an attacker who obscures a gallery the same
    # way still matches far above chance.
    style = BlurStyle(method=method, strength=strength)  # type: ignore[arg-type]
    probes = _obscured(style, other=False)
    assert _identified(probes, _obscured(style, other=True)) >= parrot_at_least
