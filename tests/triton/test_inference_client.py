"""TritonInferenceClient against the real local Triton."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef
from functions.catalog import default_catalog
from functions.errors import InferenceFailed, ModelNotReady
from functions.inference import TimedInference, TritonInferenceClient
from functions.part import Picture, StepContext
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


def test_a_missing_model_fails_at_once_naming_model_and_url(triton_url: str) -> None:
    waits: list[float] = []
    with (
        TritonInferenceClient(triton_url, sleep=waits.append) as client,
        pytest.raises(ModelNotReady) as caught,
    ):
        client.infer("no_such_model", {"x": np.zeros(1, np.float32)}, ["y"])
    assert (caught.value.model, caught.value.url) == ("no_such_model", triton_url)
    assert f"model no_such_model not ready on Triton at {triton_url}" in str(caught.value)
    assert caught.value.retryable
    assert waits == []  # no readiness wait: the broker redelivers the step instead


def test_bad_request_is_inference_failed(triton_url: str) -> None:
    wrong = np.zeros((1, 3, 32, 32), dtype=np.float32)  # yolov8n takes 640x640 only
    waits: list[float] = []
    with (
        TritonInferenceClient(triton_url, sleep=waits.append) as client,
        pytest.raises(InferenceFailed, match="yolov8n") as caught,
    ):
        client.infer("yolov8n", {"images": wrong}, ["output0"])
    assert not caught.value.retryable
    assert waits == []


def test_a_timed_client_counts_the_time_a_step_waits_for_triton(
    astronaut: npt.NDArray[np.uint8], triton_url: str
) -> None:
    part = default_catalog().get("detect_faces")
    with TritonInferenceClient(triton_url) as client:
        timed = TimedInference(client)
        context = StepContext(ObjectRef("uploads", "a.jpg"), inference=lambda: timed)
        began = time.perf_counter()
        part.run([Picture(astronaut, "jpeg")], part.parse_params({}), context)
        elapsed = time.perf_counter() - began
    # CenterFace answered through Triton: some of the step, never more than all of it
    assert 0 < timed.waited_s <= elapsed
