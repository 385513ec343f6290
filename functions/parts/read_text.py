"""read_text: read the strings in the text boxes an upstream detect_text found.

Each upstream ``text`` box is cropped from the picture (boxes are rescaled
if a resize ran in between) and read by the PP-OCRv4 recognizer on Triton
(``text_recognition``, from the ``rapidocr-onnxruntime`` wheel; it reads the
Latin alphabet, digits, punctuation and Chinese). The metadata holds each
line with its box and confidence, and the strings on their own, so that a
``when:`` condition can test them, e.g.
``ocr.strings.exists(s, s.contains("CONFIDENTIAL"))``::

    {"detections": [{"label": "text", "score": 0.97, "box": [...], "text": "CONFIDENTIAL"}],
     "strings": ["CONFIDENTIAL"], "count": 1,
     "image": {"width": 640, "height": 480}, "model": "text_recognition"}

Lines are kept in the detector's reading order. A line read with a
confidence under ``min_confidence`` (or as an empty string) is dropped.

Example:
    >>> PART.parse_params({}).min_confidence
    0.5
"""

from __future__ import annotations

from pydantic import Field

from functions.part import Group, Params, Part, PartResult, Picture, StepContext
from functions.parts._boxes import Detection, detection_metadata, upstream_detections
from functions.parts._recognition import batches, crop_line, ctc_decode

MODEL = "text_recognition"
INPUT = "x"
OUTPUTS = ["codepoints", "scores"]
# Lines per request: 8 lines 960 px wide cost about 160 MB of activations on
# the CPU; a GPU Triton's dynamic batcher merges two requests (max_batch_size 16).
MAX_BATCH = 8


class ReadTextParams(Params):
    """Which upstream boxes to read, and which readings to keep."""

    labels: tuple[str, ...] = Field(
        ("text",), min_length=1, description="Upstream detection labels whose boxes are read."
    )
    min_score: float = Field(
        0.0, ge=0.0, le=1.0, description="Ignore upstream boxes scoring below this."
    )
    min_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="Drop strings read with a lower mean confidence."
    )
    max_lines: int = Field(
        500, ge=1, le=5000, description="Read at most this many boxes (in reading order)."
    )


def read_text(pictures: list[Picture], params: ReadTextParams, context: StepContext) -> PartResult:
    """Read the upstream text boxes of the first picture (metadata only; it passes through).

    Raises:
        ModelNotReady: Triton or its ``text_recognition`` model is not available.
        InferenceFailed: Triton rejected the request.
    """
    picture = pictures[0]
    boxes = upstream_detections(
        context.upstream, picture.width, picture.height, params.labels, params.min_score
    )[: params.max_lines]
    lines = [(d, crop_line(picture.pixels, d.box)) for d in boxes]
    readable = [(d, crop) for d, crop in lines if crop is not None]
    readings: dict[int, tuple[str, float]] = {}
    if readable:
        client = context.inference_client()
        for batch in batches([crop for _, crop in readable], MAX_BATCH):
            out = client.infer(
                MODEL, {INPUT: batch.tensor}, OUTPUTS, traceparent=context.traceparent
            )
            decoded = ctc_decode(out["codepoints"], out["scores"])
            readings.update(zip(batch.indices, decoded, strict=True))
    found = []
    for i, (detection, _) in enumerate(readable):
        text, confidence = readings[i]
        if text and confidence >= params.min_confidence:
            x1, y1, x2, y2 = (round(v, 1) for v in detection.box)
            found.append(Detection("text", confidence, (x1, y1, x2, y2), text=text))
    metadata = detection_metadata(found, picture.width, picture.height)
    strings = [d.text for d in found if d.text is not None]
    return PartResult(None, {**metadata, "strings": strings, "model": MODEL})


PART = Part(
    name="read_text",
    group=Group.AI,
    summary="Read the strings in upstream text boxes (PP-OCRv4 recognizer on Triton).",
    params=ReadTextParams,
    run=read_text,
    output="detections",
    labels=("text",),
    uses_inference=True,
    reads_upstream=True,
)
