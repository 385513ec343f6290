"""Figure: ``face_quality`` -- recall and false positives of detect_faces, DNN beside Haar.

Both detectors run on the very same photos (``bench/faces.py``): real faces
from scikit-image composed into real photos at 24-224 px, flipped, tilted by
+-30 degrees, darkened, grey, with a scarf over the mouth, a man in near
profile, and 40 small LFW faces in large photos; plus face-free real photos
(the cat among them). The DNN is the part's default, CenterFace on the
stack's Triton with the part's default params, through the same
:class:`functions.parts.faces.FaceDetector` a step uses; Haar is the part's
``model: haar``, in process. A detection counts when it overlaps a true face
by IoU >= 0.4 (each used once); false positives are the detections left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.context import Context
from bench.faces import MIN_IOU, Box, Scene, Score, empty_scenes, face_scenes, score
from bench.model import Figure, Goal, Table
from eventing.contract import ObjectRef
from functions.inference import TritonInferenceClient
from functions.part import Picture, StepContext
from functions.parts.faces import FaceDetector, FaceParams

RECALL_GOAL = 0.95
FALSE_POSITIVE_GOAL = 0.1


def _timed(scenes: list[Scene], detector: FaceDetector) -> tuple[Score, float]:
    """Score ``detector`` on ``scenes``; also the mean seconds per photo."""

    def detect(pixels: npt.NDArray[np.uint8]) -> list[Box]:
        return [d.box for d in detector.find(Picture(pixels, "png"))]

    started = time.perf_counter()
    result = score(scenes, detect)
    return result, (time.perf_counter() - started) / max(1, len(scenes))


def _rows(
    dnn: dict[str, Any], haar: dict[str, Any], key: str, label: Callable[[str], str]
) -> tuple[tuple[str, ...], ...]:
    return tuple((label(k), f"{dnn[key][k]:.2f}", f"{haar[key].get(k, 0.0):.2f}") for k in dnn[key])


def measure(ctx: Context) -> Figure:
    """Run the DNN (on the stack's Triton) and Haar over the face-quality set."""
    scenes = face_scenes(ctx.quick) + empty_scenes(ctx.quick)
    params = FaceParams()
    with TritonInferenceClient(ctx.stack.triton_url, timeout_s=300) as triton:
        context = StepContext(ObjectRef("bench", "face_quality"), inference=lambda: triton)
        dnn, dnn_s = _timed(scenes, FaceDetector(params, context))
    haar, haar_s = _timed(scenes, FaceDetector(FaceParams(model="haar")))
    dnn_summary, haar_summary = dnn.summary(), haar.summary()
    value: dict[str, float | None] = {
        "dnn_recall": round(dnn.recall, 4),
        "dnn_fp_per_face_free_photo": round(dnn.fp_per_face_free_photo, 4),
        "haar_recall": round(haar.recall, 4),
        "haar_fp_per_face_free_photo": round(haar.fp_per_face_free_photo, 4),
    }
    obstacles = []
    if dnn.recall < RECALL_GOAL:
        weak = {k: v for k, v in dnn_summary["recall_by_size"].items() if v < RECALL_GOAL}
        obstacles.append(
            f"the DNN found {dnn.found} of {dnn.faces} faces; recall by face width below the "
            f"goal: {weak}; missed: {', '.join(dnn.missed[:12])}"
            + (" ..." if len(dnn.missed) > 12 else "")
        )
    if dnn.fp_per_face_free_photo > FALSE_POSITIVE_GOAL:
        obstacles.append(
            f"the DNN fired {dnn.false_positives_face_free} times on {dnn.face_free_photos} "
            f"face-free photos: {', '.join(a for a in dnn.false_alarms if 'x' in a)}"
        )
    faces = sum(len(s.faces) for s in scenes)
    return Figure(
        key="face_quality",
        value=value,
        goals=[
            Goal("face_quality.dnn_recall", ">=", RECALL_GOAL),
            Goal("face_quality.dnn_fp_per_face_free_photo", "<=", FALSE_POSITIVE_GOAL),
        ],
        method=(
            f"{faces} real faces (scikit-image's astronaut, cameraman and LFW subset) in "
            f"{sum(1 for s in scenes if s.faces)} photos composed from face-free real photos at "
            "24-224 px, flipped, tilted +-30 degrees, darkened, grey, with a synthetic scarf, "
            f"plus {sum(1 for s in scenes if not s.faces)} face-free real photos "
            "(bench/faces.py). The DNN (detect_faces' default: CenterFace on the stack's Triton, "
            f"threshold {params.threshold}, zoom {params.zoom}, max_side {params.max_side}) and "
            "Haar (model: haar, in process) run on the same pixels; a detection matches a true "
            f"face at IoU >= {MIN_IOU}, each used once; false positives are unmatched detections."
        ),
        details={
            "dnn": dnn_summary,
            "haar": haar_summary,
            "params": params.model_dump(),
            "seconds_per_photo": {"dnn": round(dnn_s, 3), "haar": round(haar_s, 3)},
        },
        obstacles=obstacles,
        tables=[
            Table(
                "Recall by variant (same photos)",
                ("variant", "DNN", "Haar"),
                _rows(dnn_summary, haar_summary, "recall_by_variant", str),
            ),
            Table(
                "Recall by face width",
                ("width", "DNN", "Haar"),
                _rows(dnn_summary, haar_summary, "recall_by_size", lambda k: f"{k} px"),
            ),
            Table(
                "False positives",
                ("per photo", "DNN", "Haar"),
                (
                    (
                        "face-free",
                        f"{dnn.fp_per_face_free_photo:.3f}",
                        f"{haar.fp_per_face_free_photo:.3f}",
                    ),
                    (
                        "with faces",
                        f"{dnn.fp_per_photo_with_faces:.3f}",
                        f"{haar.fp_per_photo_with_faces:.3f}",
                    ),
                ),
            ),
        ],
    )
