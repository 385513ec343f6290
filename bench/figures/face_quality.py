"""Figure: ``face_quality`` -- detect_faces' recall and false positives, held out.

The goals are held on the **held-out** split (``bench/face_splits.py``),
which played no part in choosing any of detect_faces' defaults: new LFW
faces and new compositions on backgrounds the tuning never saw, and
face-free photos with face-like things (a cat's face, a snake's head, the
phantom's head, a drawn mask). Beside it: the **tuning** split the defaults
were chosen on (``bench/faces.py``; a figure on it measures the choice), and
the threshold sweep on both (recall against false positives per face-free
photo), with the threshold the part's rule picks on the tuning split: the
lowest that keeps false positives at or under the goal.

The DNN is the part's default, CenterFace on the stack's Triton through the
same :class:`functions.parts.faces.FaceDetector` a step uses, run once per
photo at the lowest threshold of the sweep; each threshold's detections are
those scoring above it (:func:`above`: the same boxes the part finds at that
threshold, since its peaks and NMS keep a box only for a better-scoring
one). Haar (``model: haar``, in process) runs on the held-out split. A
detection counts when it overlaps a true face by IoU >= 0.4 (each used
once); false positives are the detections left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.context import Context
from bench.face_splits import SWEEP, held_out, lowest_passing
from bench.faces import MIN_IOU, Box, Scene, Score, empty_scenes, face_scenes, score_found
from bench.model import Figure, Goal, Table
from eventing.contract import ObjectRef
from functions.inference import TritonInferenceClient
from functions.part import Picture, StepContext
from functions.parts.faces import DEFAULT_THRESHOLD, FaceDetector, FaceParams

RECALL_GOAL = 0.95
FALSE_POSITIVE_GOAL = 0.1
Scored = list[list[tuple[Box, float]]]  # per scene: (box, score) of every detection


def detect_all(scenes: Sequence[Scene], detector: FaceDetector) -> tuple[Scored, float]:
    """Every scene's detections with their scores; also the mean seconds per photo."""
    started = time.perf_counter()
    found = [[(d.box, d.score) for d in detector.find(Picture(s.pixels, "png"))] for s in scenes]
    return found, (time.perf_counter() - started) / max(1, len(scenes))


def above(found: Scored, threshold: float) -> list[list[Box]]:
    """The boxes scoring above ``threshold`` (what the part finds at that threshold)."""
    return [[box for box, s in scene if s > threshold] for scene in found]


def sweep(scenes: Sequence[Scene], found: Scored) -> list[tuple[float, Score]]:
    """The score at every threshold of :data:`SWEEP`."""
    return [(t, score_found(scenes, above(found, t))) for t in SWEEP]


def _rows(
    dnn: dict[str, Any], haar: dict[str, Any], key: str, label: Callable[[str], str]
) -> tuple[tuple[str, ...], ...]:
    return tuple((label(k), f"{dnn[key][k]:.2f}", f"{haar[key].get(k, 0.0):.2f}") for k in dnn[key])


def measure(ctx: Context) -> Figure:
    """Run the DNN (on the stack's Triton) on both splits and Haar on the held-out one."""
    tuning = face_scenes(ctx.quick) + empty_scenes(ctx.quick)
    faces, empty = held_out(ctx.quick)
    held = faces + empty
    params = FaceParams()
    floor = FaceParams(threshold=SWEEP[0])
    with TritonInferenceClient(ctx.stack.triton_url, timeout_s=300) as triton:
        context = StepContext(ObjectRef("bench", "face_quality"), inference=lambda: triton)
        tuning_found, dnn_s = detect_all(tuning, FaceDetector(floor, context))
        held_found, _ = detect_all(held, FaceDetector(floor, context))
    haar_found, haar_s = detect_all(held, FaceDetector(FaceParams(model="haar")))
    haar = score_found(held, above(haar_found, -1.0))
    return figure(
        tuning, held, tuning_found, held_found, haar, params, {"dnn": dnn_s, "haar": haar_s}
    )


def figure(
    tuning: Sequence[Scene],
    held: Sequence[Scene],
    tuning_found: Scored,
    held_found: Scored,
    haar: Score,
    params: FaceParams,
    seconds_per_photo: dict[str, float],
) -> Figure:
    """The figure from the detections (pure: the tests build it from made-up detections)."""
    tuning_sweep, held_sweep = sweep(tuning, tuning_found), sweep(held, held_found)
    dnn = score_found(held, above(held_found, params.threshold))
    tuned_on = score_found(tuning, above(tuning_found, params.threshold))
    picked = lowest_passing(
        [(t, s.fp_per_face_free_photo) for t, s in tuning_sweep], FALSE_POSITIVE_GOAL
    )
    value: dict[str, float | None] = {
        "dnn_recall": round(dnn.recall, 4),
        "dnn_fp_per_face_free_photo": round(dnn.fp_per_face_free_photo, 4),
        "tuning_dnn_recall": round(tuned_on.recall, 4),
        "tuning_dnn_fp_per_face_free_photo": round(tuned_on.fp_per_face_free_photo, 4),
        "haar_recall": round(haar.recall, 4),
        "haar_fp_per_face_free_photo": round(haar.fp_per_face_free_photo, 4),
        "threshold_picked_on_tuning": picked,
    }
    summary, haar_summary = dnn.summary(), haar.summary()
    obstacles = []
    if picked != params.threshold:
        obstacles.append(
            f"the part's threshold ({params.threshold}) is not the one its rule picks on the "
            f"tuning split ({picked}): the lowest that keeps false positives <= "
            f"{FALSE_POSITIVE_GOAL} per face-free photo there"
        )
    if dnn.recall < RECALL_GOAL:
        weak = {k: v for k, v in summary["recall_by_size"].items() if v < RECALL_GOAL}
        obstacles.append(
            f"held out, the DNN found {dnn.found} of {dnn.faces} faces; recall by face width "
            f"below the goal: {weak}; missed: {', '.join(dnn.missed[:12])}"
            + (" ..." if len(dnn.missed) > 12 else "")
        )
    if dnn.fp_per_face_free_photo > FALSE_POSITIVE_GOAL:
        obstacles.append(
            f"held out, the DNN fired {dnn.false_positives_face_free} times on "
            f"{dnn.face_free_photos} face-free photos: "
            + ", ".join(a for a in dnn.false_alarms if not _has_faces(a, held))
        )
    return Figure(
        key="face_quality",
        value=value,
        goals=[
            Goal("face_quality.dnn_recall", ">=", RECALL_GOAL),
            Goal("face_quality.dnn_fp_per_face_free_photo", "<=", FALSE_POSITIVE_GOAL),
        ],
        method=_method(tuning, held, params),
        details={
            "held_out": summary,
            "tuning": tuned_on.summary(),
            "haar_held_out": haar_summary,
            "params": params.model_dump(),
            "default_threshold": DEFAULT_THRESHOLD,
            "sweep": {
                "thresholds": list(SWEEP),
                "tuning": [_point(s) for _, s in tuning_sweep],
                "held_out": [_point(s) for _, s in held_sweep],
            },
            "seconds_per_photo": {k: round(v, 3) for k, v in seconds_per_photo.items()},
        },
        obstacles=obstacles,
        tables=[
            Table(
                "Threshold sweep of the DNN: recall and false positives per face-free photo",
                ("threshold", "tuning recall", "tuning FP", "held-out recall", "held-out FP"),
                tuple(
                    (
                        f"{t:.2f}" + (" (default)" if t == params.threshold else ""),
                        f"{a.recall:.3f}",
                        f"{a.fp_per_face_free_photo:.3f}",
                        f"{b.recall:.3f}",
                        f"{b.fp_per_face_free_photo:.3f}",
                    )
                    for (t, a), (_, b) in zip(tuning_sweep, held_sweep, strict=True)
                ),
            ),
            Table(
                "Held out: recall by variant (same photos)",
                ("variant", "DNN", "Haar"),
                _rows(summary, haar_summary, "recall_by_variant", str),
            ),
            Table(
                "Held out: recall by face width",
                ("width", "DNN", "Haar"),
                _rows(summary, haar_summary, "recall_by_size", lambda k: f"{k} px"),
            ),
            Table(
                "False positives per photo",
                ("split", "DNN face-free", "DNN with faces", "Haar face-free"),
                (
                    (
                        "held out",
                        f"{dnn.fp_per_face_free_photo:.3f}",
                        f"{dnn.fp_per_photo_with_faces:.3f}",
                        f"{haar.fp_per_face_free_photo:.3f}",
                    ),
                    (
                        "tuning",
                        f"{tuned_on.fp_per_face_free_photo:.3f}",
                        f"{tuned_on.fp_per_photo_with_faces:.3f}",
                        "",
                    ),
                ),
            ),
        ],
    )


def _has_faces(alarm: str, scenes: Sequence[Scene]) -> bool:
    name = alarm.rsplit(" (", 1)[0]
    return any(s.name == name and s.faces for s in scenes)


def _point(s: Score) -> dict[str, float]:
    return {
        "recall": round(s.recall, 4),
        "fp_per_face_free_photo": round(s.fp_per_face_free_photo, 4),
    }


def _method(tuning: Sequence[Scene], held: Sequence[Scene], params: FaceParams) -> str:
    def count(scenes: Sequence[Scene]) -> str:
        faces = sum(len(s.faces) for s in scenes)
        photos = sum(1 for s in scenes if s.faces)
        return f"{faces} faces in {photos} photos and {len(scenes) - photos} face-free photos"

    return (
        f"Held out (the goals; no default was chosen on it): {count(held)}: LFW faces 40-95 and "
        "the astronaut and cameraman composed anew (24-224 px, flipped, tilted +-30 degrees, "
        "darkened, grey, a synthetic scarf) on scikit-image samples the tuning never used, and "
        "those samples face-free, with a cat's face, a snake's head, the phantom's head and a "
        "drawn mask pasted in at 64-224 px (bench/face_splits.py). Tuning (what the defaults "
        f"were chosen on): {count(tuning)} (bench/faces.py). The DNN (detect_faces' default: "
        f"CenterFace on the stack's Triton, threshold {params.threshold}, zoom {params.zoom}, "
        f"max_side {params.max_side}) runs once per photo at threshold {SWEEP[0]}; each "
        "threshold of the sweep keeps the detections scoring above it. Haar (model: haar, in "
        f"process) on the held-out photos. A detection matches a true face at IoU >= {MIN_IOU}, "
        "each used once; false positives are unmatched detections."
    )
