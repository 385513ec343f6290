"""blur_faces: find faces and obscure them in one step (no upstream detector needed).

It is detect_faces' detector (CenterFace on Triton by default, or the Haar
cascade) followed by blur's region obscuring, so the two stay consistent with
the separate parts.
"""

from __future__ import annotations

from dataclasses import replace

from functions.part import Group, Part, PartResult, Picture, StepContext
from functions.parts._boxes import detection_metadata
from functions.parts.blur import BlurStyle, blur_regions
from functions.parts.faces import FaceDetector, FaceParams


class BlurFacesParams(BlurStyle, FaceParams):
    """How faces are found (detect_faces' params) and obscured (blur's style)."""


def _run(pictures: list[Picture], params: BlurFacesParams, context: StepContext) -> PartResult:
    picture = pictures[0]
    found = FaceDetector(params, context).find(picture)
    pixels = blur_regions(picture.pixels, (d.box for d in found), params)
    metadata = detection_metadata(found, picture.width, picture.height)
    metadata["blurred"] = len(found)
    metadata["model"] = params.model
    return PartResult(replace(picture, pixels=pixels), metadata)


PART = Part(
    name="blur_faces",
    group=Group.POST,
    summary="Find faces (CenterFace on Triton, or Haar on the CPU) and obscure them, in one step.",
    params=BlurFacesParams,
    run=_run,
    labels=("face",),
    uses_inference=True,
)
