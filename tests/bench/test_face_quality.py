"""face_quality holds its goals on photos no default was chosen on, and sweeps its threshold."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from bench.face_splits import HELD_OUT_PHOTOS, LOOKALIKES, held_out, lfw_faces_used, lowest_passing
from bench.faces import BACKGROUNDS, FACE_FREE, Face, Scene, Score, empty_scenes, face_scenes
from bench.figures.face_quality import above, detect_all, figure
from eventing.contract import ObjectRef
from functions.part import Picture, StepContext
from functions.parts.faces import DEFAULT_THRESHOLD, FaceDetector, FaceParams


@cache
def _held(quick: bool = True) -> tuple[list[Scene], list[Scene]]:
    return held_out(quick)


def test_the_held_out_split_shares_no_photo_and_no_lfw_face_with_the_tuning_split() -> None:
    assert not set(HELD_OUT_PHOTOS) & (set(BACKGROUNDS) | set(FACE_FREE))
    # The tuning split's crowds hold LFW's faces 0-39 (5 crowds of 8).
    assert min(lfw_faces_used(quick=False)) >= 40
    assert max(lfw_faces_used(quick=False)) < 100  # the last 100 patches are not faces


def test_held_out_face_free_photos_hold_face_like_things_and_no_face() -> None:
    faces, empty = _held()
    assert all(not s.faces for s in empty)
    assert all(s.faces for s in faces)
    names = [s.name for s in empty]
    assert all(any(f"/{thing}-" in n for n in names) for thing in LOOKALIKES)
    tuning = {s.name for s in face_scenes(quick=True) + empty_scenes(quick=True)}
    assert not tuning & {s.name for s in faces + empty}


def test_held_out_photos_are_not_tuning_photos() -> None:
    faces, empty = _held()
    tuning = [s.pixels for s in face_scenes(quick=True) + empty_scenes(quick=True)]
    for scene in faces + empty:
        assert not any(
            p.shape == scene.pixels.shape and np.array_equal(p, scene.pixels) for p in tuning
        ), scene.name


@pytest.mark.parametrize(
    ("points", "picked"),
    [
        ([(0.2, 0.5), (0.3, 0.12), (0.35, 0.09), (0.4, 0.0)], 0.35),
        ([(0.4, 0.0), (0.05, 0.1)], 0.05),
        ([(0.5, 0.2), (0.9, 0.11)], None),
    ],
)
def test_the_rule_picks_the_lowest_threshold_that_meets_the_goal(
    points: list[tuple[float, float]], picked: float | None
) -> None:
    assert lowest_passing(points, 0.1) == picked


class _MapsClient:
    """An inference client answering CenterFace-shaped maps with a few peaks of many scores."""

    url = "fake"

    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        traceparent: str | None = None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        batch, _, height, width = inputs["image"].shape
        rng = np.random.default_rng(height * 7 + width)
        cells = (batch, height // 4, width // 4)
        heat = (rng.random((batch, 1, *cells[1:])) ** 6).astype(np.float32)
        scale = np.full((batch, 2, *cells[1:]), np.log(6.0), np.float32)
        scale += rng.normal(0, 0.4, scale.shape).astype(np.float32)
        offset = rng.random((batch, 2, *cells[1:])).astype(np.float32)
        landmarks = rng.random((batch, 10, *cells[1:])).astype(np.float32)
        maps = {"heatmap": heat, "scale": scale, "offset": offset, "landmarks": landmarks}
        return {name: maps[name] for name in outputs}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("threshold", [0.1, DEFAULT_THRESHOLD, 0.6])
def test_filtering_the_lowest_thresholds_detections_is_running_the_part_at_a_threshold(
    threshold: float,
) -> None:
    # The sweep runs the DNN once: it must find, at each threshold, what the part finds there.
    client = _MapsClient()
    context = StepContext(ObjectRef("b", "k"), inference=lambda: client)
    scenes = [Scene("tiled", np.zeros((600, 800, 3), np.uint8))]  # whole view and tiles
    found, _ = detect_all(scenes, FaceDetector(FaceParams(threshold=0.05), context))
    direct = FaceDetector(FaceParams(threshold=threshold), context).find(
        Picture(scenes[0].pixels, "png")
    )
    assert len(found[0]) > len(direct) > 0
    assert above(found, threshold) == [[d.box for d in direct]]


def _scene(name: str, faces: int) -> Scene:
    boxes = tuple(
        Face((10.0 * i, 0.0, 10.0 * i + 8, 8.0), "lfw", 24, "plain") for i in range(faces)
    )
    return Scene(name, np.zeros((8, 80, 3), np.uint8), boxes)


def test_the_goals_are_held_on_the_held_out_split_not_the_tuning_one() -> None:
    tuning = [_scene("t-face", 1), _scene("t-empty", 0)]
    held = [_scene("h-face", 1), _scene("h-empty", 0)]
    face = (0.0, 0.0, 8.0, 8.0)
    # Tuned: no false alarm above 0.3. Held out: the face-free photo fires at 0.5.
    tuning_found = [[(face, 0.9)], [((50.0, 0.0, 58.0, 8.0), 0.25)]]
    held_found = [[(face, 0.9)], [((50.0, 0.0, 58.0, 8.0), 0.5)]]
    result = figure(tuning, held, tuning_found, held_found, Score(), FaceParams(threshold=0.35), {})
    assert isinstance(result.value, dict)
    assert result.value["tuning_dnn_fp_per_face_free_photo"] == 0.0
    assert result.value["dnn_fp_per_face_free_photo"] == 1.0
    assert result.value["dnn_recall"] == 1.0
    assert result.value["threshold_picked_on_tuning"] == 0.25
    assert {g.key for g in result.goals} == {
        "face_quality.dnn_recall",
        "face_quality.dnn_fp_per_face_free_photo",
    }
    assert any("h-empty" in o for o in result.obstacles)
    assert any("rule picks" in o for o in result.obstacles)
    sweep = result.tables[0]
    assert [r[0] for r in sweep.rows].count("0.35 (default)") == 1
