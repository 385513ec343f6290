"""TritonInferenceClient without a server: the bounded wait when Triton is down."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from functions.errors import ModelNotReady
from functions.inference import InferenceClient, TritonInferenceClient
from kpipe.settings import InferenceSettings

X = {"x": np.zeros((1, 3, 32, 32), dtype=np.float32)}


@pytest.mark.parametrize("wait_s", [0.0, 0.5, 1.5])
def test_server_down_fails_within_the_bound(free_port: Callable[[], int], wait_s: float) -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with TritonInferenceClient(url, ready_wait_s=wait_s) as client:
        started = time.monotonic()
        with pytest.raises(
            ModelNotReady, match=f"model text_detection not ready on Triton at {url}: unreachable"
        ):
            client.infer("text_detection", X, ["y"])
        elapsed = time.monotonic() - started
    assert wait_s <= elapsed < wait_s + 1.0


def test_error_carries_model_and_url(free_port: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        TritonInferenceClient(url, ready_wait_s=0) as client,
        pytest.raises(ModelNotReady) as caught,
    ):
        client.infer("yolov8n", X, ["output0"])
    assert (caught.value.model, caught.value.url) == ("yolov8n", url)
    assert caught.value.retryable


def test_from_settings_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]
) -> None:
    url = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("TRITON_URL", url)
    monkeypatch.setenv("TRITON_READY_WAIT_S", "0.25")
    client = TritonInferenceClient.from_settings()
    try:
        assert (client.url, client.ready_wait_s) == (url, 0.25)
    finally:
        client.close()


def test_settings_object_is_used(free_port: Callable[[], int]) -> None:
    url = f"127.0.0.1:{free_port()}"
    settings = InferenceSettings(TRITON_URL=url, TRITON_READY_WAIT_S=0)  # type: ignore[call-arg]
    with TritonInferenceClient.from_settings(settings) as client:
        assert client.url == url
        assert client.ready_wait_s == 0


def test_is_an_inference_client(free_port: Callable[[], int]) -> None:
    with TritonInferenceClient(f"127.0.0.1:{free_port()}") as client:
        as_protocol: InferenceClient = client
        assert as_protocol.url == client.url
