"""read_text through the real local Triton: detect_text's boxes in, the strings out.

Real text: scikit-image's scanned page, its photo of handwritten formulas,
and lines this test renders with Pillow's bundled font, on white and on a
real photo.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import StepOutput
from functions.catalog import default_catalog
from functions.part import Picture, StepContext
from tests.conftest import rendered_text

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def _as_rgb(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))


def _run(
    function: str,
    pixels: npt.NDArray[np.uint8],
    context: StepContext,
    upstream: dict[str, StepOutput] | None = None,
    **params: object,
) -> tuple[dict[str, Any], npt.NDArray[np.uint8] | None]:
    part = default_catalog().get(function)
    step = StepContext(source=context.source, upstream=upstream or {}, inference=context.inference)
    result = part.run([Picture(pixels, "png")], part.parse_params(params), step)
    return result.metadata, None if result.picture is None else result.picture.pixels


def _read(pixels: npt.NDArray[np.uint8], context: StepContext, **params: object) -> dict[str, Any]:
    found, _ = _run("detect_text", pixels, context)
    metadata, picture = _run(
        "read_text", pixels, context, {"text": StepOutput((), found)}, **params
    )
    assert picture is None  # read_text passes its input through
    return metadata


def test_reads_the_lines_of_a_printed_page(
    text_page: npt.NDArray[np.uint8], inference_context: StepContext
) -> None:
    metadata = _read(_as_rgb(text_page), inference_context)
    strings = metadata["strings"]
    assert metadata["model"] == "text_recognition"
    assert metadata["count"] == len(strings) == len(metadata["detections"]) >= 5
    assert strings[0] == "Region-based segmentation"
    assert any("markers of the coins" in s for s in strings)
    assert any("histogram of grey values" in s for s in strings)
    for detection, string in zip(metadata["detections"], strings, strict=True):
        assert detection["label"] == "text"
        assert detection["text"] == string
        assert 0.5 <= detection["score"] <= 1.0
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 < x2 <= text_page.shape[1]
        assert 0 <= y1 < y2 <= text_page.shape[0]


LINES = ["CONFIDENTIAL", "Invoice 2024-0917", "kpipe reads text"]


def test_reads_rendered_lines_exactly(inference_context: StepContext) -> None:
    assert _read(rendered_text(LINES), inference_context)["strings"] == LINES


def test_reads_rendered_lines_on_a_photo(inference_context: StepContext) -> None:
    from skimage import data

    strings = _read(rendered_text(LINES, data.coffee()), inference_context)["strings"]
    # On a busy photo the recognizer may drop a space between words (it read
    # "Invoice2024-0917"); every character is still there, in order.
    assert [s.replace(" ", "") for s in strings] == [s.replace(" ", "") for s in LINES]


def test_handwriting_yields_no_confident_string(inference_context: StepContext) -> None:
    # scikit-image's "text" is handwritten formulas on tilted lines: beyond a
    # recognizer trained on print (RapidOCR's own pipeline reads only "S=" and
    # "2" there). What it guesses stays under the default confidence.
    from skimage import data

    pixels = _as_rgb(data.text())
    found, _ = _run("detect_text", pixels, inference_context)
    assert found["count"] >= 1
    guesses, _ = _run(
        "read_text", pixels, inference_context, {"t": StepOutput((), found)}, min_confidence=0.0
    )
    assert guesses["count"] >= 1
    assert all(d["score"] < 0.5 for d in guesses["detections"])
    assert _read(pixels, inference_context)["strings"] == []


def test_a_when_condition_can_test_the_strings(inference_context: StepContext) -> None:
    import celpy

    metadata = _read(rendered_text(LINES), inference_context)
    env = celpy.Environment()
    program = env.program(env.compile('ocr.strings.exists(s, s.contains("CONFIDENTIAL"))'))
    assert program.evaluate({"ocr": celpy.json_to_cel(metadata)}) == celpy.celtypes.BoolType(True)
    absent = env.program(env.compile('ocr.strings.exists(s, s.contains("SECRET"))'))
    assert absent.evaluate({"ocr": celpy.json_to_cel(metadata)}) == celpy.celtypes.BoolType(False)


def test_blur_by_label_leaves_nothing_to_read(inference_context: StepContext) -> None:
    pixels = rendered_text(LINES)
    found, _ = _run("detect_text", pixels, inference_context)
    upstream = {"text": StepOutput((), found)}
    read, _ = _run("read_text", pixels, inference_context, upstream)
    upstream["ocr"] = StepOutput((), read)
    blurred_meta, blurred = _run("blur", pixels, inference_context, upstream, labels=["text"])
    assert blurred_meta["blurred"] == len(LINES)  # each line once, though two steps name it
    assert blurred is not None
    assert _read(blurred, inference_context)["strings"] == []
