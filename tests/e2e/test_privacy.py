"""The privacy pipeline through the whole stack blurs a face that the Haar cascade misses."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from bench.faces import face_scenes, iou
from functions.part import Picture
from functions.parts.faces import FaceDetector, FaceParams
from tests.conftest import encode
from tests.e2e.conftest import Stack
from tests.router.conftest import privacy_blur

pytestmark = [pytest.mark.slow, pytest.mark.stack]

PREFIX = "privacy-e2e/"


def _sharpness(pixels: npt.NDArray[np.uint8]) -> float:
    gray = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _crop(pixels: npt.NDArray[np.uint8], box: tuple[float, ...]) -> npt.NDArray[np.uint8]:
    x1, y1, x2, y2 = (round(v) for v in box)
    return pixels[y1:y2, x1:x2]


def test_a_tilted_face_haar_misses_comes_out_blurred(stack: Stack) -> None:
    # The astronaut's face, tilted 30 degrees, 96 px wide in a 1280 x 960 photo.
    (scene,) = [s for s in face_scenes(quick=True) if s.name == "astronaut-96px-tilt+30"]
    upload = encode(scene.pixels, "JPEG", quality=95)
    uploaded = np.asarray(Image.open(io.BytesIO(upload)).convert("RGB"))
    (face,) = scene.faces
    # The cascade, as detect_faces ran it before (model: haar), misses it.
    haar = FaceDetector(FaceParams(model="haar")).find(Picture(uploaded, "jpeg"))
    assert all(iou(d.box, face.box) < 0.4 for d in haar), haar

    spec = privacy_blur()
    spec["name"] = "privacy-e2e"
    spec["trigger"] = {"bucket": "uploads", "prefix": PREFIX, "suffix": ".jpg"}
    stack.apply(spec)
    stack.upload(f"{PREFIX}tilted.jpg", upload)
    run = stack.wait_run("privacy-e2e", f"{PREFIX}tilted.jpg", timeout_s=180)
    assert run["status"] == "succeeded", run
    _resize, faces, blur = run["steps"]
    # resize -> 1024 x 768; the DNN finds the face there (boxes in that picture's pixels).
    scale = 1024 / scene.pixels.shape[1]
    expected = tuple(v * scale for v in face.box)
    assert faces["metadata"]["model"] == "centerface"
    found = [tuple(d["box"]) for d in faces["metadata"]["detections"]]
    assert any(iou(box, expected) >= 0.4 for box in found), found
    assert blur["metadata"]["blurred"] == len(found)

    (output,) = run["outputs"]
    out = np.asarray(Image.open(io.BytesIO(stack.read(output["bucket"], output["key"]))))
    assert out.shape == (768, 1024, 3)
    resized = np.asarray(Image.fromarray(uploaded).resize((1024, 768), Image.Resampling.LANCZOS))
    # The face's detail is gone; the rest of the photo keeps its own.
    assert _sharpness(_crop(out, expected)) < 0.05 * _sharpness(_crop(resized, expected))
    rest = (0, 0, 1024, 200) if expected[1] > 300 else (0, 568, 1024, 768)
    assert _sharpness(_crop(out, rest)) > 0.7 * _sharpness(_crop(resized, rest))
