"""The face-quality set: what it composes, and how it scores detections."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from bench.faces import (
    ASTRONAUT_FACE,
    LARGE,
    VARIANTS,
    Box,
    Face,
    Scene,
    empty_scenes,
    face_scenes,
    iou,
    match,
    score,
)


@cache
def _quick() -> tuple[list[Scene], list[Scene]]:
    return face_scenes(quick=True), empty_scenes(quick=True)


def test_every_variant_and_source_is_there() -> None:
    faces = [face for scene in _quick()[0] for face in scene.faces]
    assert {f.variant for f in faces} == {"plain", *VARIANTS}
    assert {f.source for f in faces} == {"astronaut", "cameraman", "lfw"}
    assert min(f.size for f in faces) == 24


def test_true_boxes_lie_inside_their_photos() -> None:
    for scene in _quick()[0]:
        height, width = scene.pixels.shape[:2]
        assert scene.pixels.dtype == np.uint8
        assert scene.pixels.shape[2] == 3
        for face in scene.faces:
            x1, y1, x2, y2 = face.box
            assert 0 <= x1 < x2 <= width, scene.name
            assert 0 <= y1 < y2 <= height, scene.name


def test_small_faces_sit_in_large_photos() -> None:
    small = [s for s in _quick()[0] if any(f.size <= 32 for f in s.faces)]
    assert small
    assert all(s.pixels.shape[:2] == LARGE[::-1] for s in small)


def test_a_face_is_pasted_where_its_box_says() -> None:
    from skimage import data

    (scene,) = [s for s in _quick()[0] if s.name == "astronaut-64px-plain"]
    (face,) = scene.faces
    x1, y1, x2, y2 = (round(v) for v in face.box)
    assert x2 - x1 == 64
    pasted = scene.pixels[y1:y2, x1:x2].astype(np.float64).mean(axis=2)
    ax1, ay1, ax2, ay2 = (round(v) for v in ASTRONAUT_FACE)
    source = data.astronaut()[ay1:ay2, ax1:ax2].astype(np.float64).mean(axis=2)
    source = cv2.resize(source, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(pasted.ravel(), source.ravel())[0, 1] > 0.9


def test_the_same_call_composes_the_same_pixels() -> None:
    again = face_scenes(quick=True)
    assert [s.name for s in again] == [s.name for s in _quick()[0]]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again, _quick()[0], strict=True))


@pytest.mark.parametrize("variant", ["tilt+30", "tilt-30"])
def test_a_tilted_face_has_a_wider_upright_box(variant: str) -> None:
    (tilted,) = [s for s in _quick()[0] if s.name == f"astronaut-96px-{variant}"]
    (face,) = tilted.faces
    width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
    # The ellipse of a 96 x 117 face turned 30 degrees spans more than 96 across.
    assert 96 < width < 96 * 1.37
    assert height < 117


def test_dark_and_grey_change_the_whole_photo() -> None:
    scenes = {s.name: s for s in _quick()[0]}
    dark = scenes["astronaut-96px-dark"].pixels
    grey = scenes["astronaut-96px-grey"].pixels
    assert dark.max() <= round(0.35 * 255)
    assert np.array_equal(grey[..., 0], grey[..., 1])
    assert np.array_equal(grey[..., 1], grey[..., 2])


def test_face_free_photos_have_no_faces() -> None:
    empty = _quick()[1]
    assert empty
    assert all(not s.faces for s in empty)
    assert len({s.name for s in empty}) == len(empty)


def test_the_originals_keep_their_hand_placed_box() -> None:
    (astronaut,) = [s for s in _quick()[0] if s.name == "astronaut-original"]
    assert astronaut.faces[0].box == ASTRONAUT_FACE


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
        ((0, 0, 10, 10), (10, 10, 20, 20), 0.0),
        ((0, 0, 0, 10), (0, 0, 0, 10), 0.0),
    ],
)
def test_iou(a: Box, b: Box, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)


def test_match_pairs_best_first_and_uses_each_detection_once() -> None:
    truth: list[Box] = [(0, 0, 10, 10), (1, 0, 11, 10)]
    found: list[Box] = [(1, 0, 11, 10)]
    # The detection fits the second face exactly: it goes there, the first is missed.
    assert match(truth, found) == [None, 0]
    assert match(truth, [(50, 50, 60, 60)]) == [None, None]
    assert match([(0, 0, 10, 10)], [(0, 0, 10, 16)], min_iou=0.7) == [None]


def test_score_counts_recall_and_false_positives() -> None:
    pixels = np.zeros((4, 4, 3), np.uint8)
    with_faces = Scene(
        "two",
        pixels,
        (
            Face((0, 0, 10, 10), "lfw", 24, "plain"),
            Face((20, 20, 30, 30), "lfw", 32, "dark"),
        ),
    )
    empty = Scene("none", pixels)
    answers = {
        "two": [(0, 0, 10, 10), (40, 40, 50, 50)],  # one hit, one false alarm
        "none": [(1, 1, 2, 2), (3, 3, 4, 4)],  # two false alarms
    }
    names = iter(["two", "none"])
    result = score([with_faces, empty], lambda _: answers[next(names)])
    assert (result.faces, result.found) == (2, 1)
    assert result.recall == 0.5
    assert result.fp_per_face_free_photo == 2.0
    assert result.fp_per_photo_with_faces == 1.0
    summary = result.summary()
    assert summary["recall_by_variant"] == {"dark": 0.0, "plain": 1.0}
    assert summary["recall_by_size"] == {"24": 1.0, "32": 0.0}
    assert summary["missed"] == ["two:lfw"]
    assert summary["false_alarms"] == ["two (1)", "none (2)"]
