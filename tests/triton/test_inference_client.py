"""TritonInferenceClient against the real local Triton."""

from __future__ import annotations

import time

import numpy as np
import pytest

from functions.errors import InferenceFailed, ModelNotReady
from functions.inference import TritonInferenceClient
from tests.triton import yolo_model

pytestmark = [pytest.mark.slow, pytest.mark.triton]


def test_infer_returns_binary_outputs(triton_url: str) -> None:
    x = np.zeros((1, 3, 64, 96), dtype=np.float32)
    with TritonInferenceClient(triton_url) as client:
        out = client.infer("text_detection", {"x": x}, ["sigmoid_0.tmp_0"])
    assert out["sigmoid_0.tmp_0"].shape == (1, 1, 64, 96)
    assert out["sigmoid_0.tmp_0"].dtype == np.float32


def test_infer_sends_traceparent(triton_url: str) -> None:
    images = np.zeros((1, 3, 640, 640), dtype=np.float32)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with TritonInferenceClient(triton_url) as client:
        out = client.infer("yolov8n", {"images": images}, ["output0"], traceparent=traceparent)
    np.testing.assert_array_equal(out["output0"], yolo_model.known_output())


def test_missing_model_fails_within_the_bound(triton_url: str) -> None:
    with TritonInferenceClient(triton_url, ready_wait_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ModelNotReady) as caught:
            client.infer("no_such_model", {"x": np.zeros(1, np.float32)}, ["y"])
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0
    assert caught.value.model == "no_such_model"
    assert caught.value.url == triton_url
    assert f"model no_such_model not ready on Triton at {triton_url}" in str(caught.value)


def test_bad_request_is_inference_failed(triton_url: str) -> None:
    wrong = np.zeros((1, 3, 32, 32), dtype=np.float32)  # yolov8n takes 640x640 only
    with TritonInferenceClient(triton_url, ready_wait_s=5.0) as client:
        started = time.monotonic()
        with pytest.raises(InferenceFailed, match="yolov8n"):
            client.infer("yolov8n", {"images": wrong}, ["output0"])
    assert time.monotonic() - started < 2.0
