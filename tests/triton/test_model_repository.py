"""The model repository's configs, and copying the packaged weights into one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from functions.parts._coco import COCO_LABELS
from kpipe.local.triton.repository import BadModelConfig, read_model_config, read_repository
from kpipe.local.triton.weights import PACKAGED_WEIGHTS, install_weights
from tests.triton.local_triton import REPOSITORY


def test_repository_lists_every_model() -> None:
    assert [m.name for m in read_repository(REPOSITORY)] == [
        "face_detection",
        "text_detection",
        "text_recognition",
        "yolov8n",
    ]


def test_face_detection_batches_tiles_of_any_size() -> None:
    spec = read_model_config(REPOSITORY / "face_detection" / "config.pbtxt")
    assert spec.platform == "onnxruntime_onnx"
    assert spec.max_batch_size == 8
    assert spec.max_queue_delay_microseconds is not None
    assert [(t.name, t.dtype, t.dims) for t in spec.inputs] == [("image", np.float32, (3, -1, -1))]
    assert [(t.name, t.dims[0]) for t in spec.outputs] == [
        ("heatmap", 1),
        ("scale", 2),
        ("offset", 2),
        ("landmarks", 10),
    ]


def test_text_recognition_answers_code_points() -> None:
    spec = read_model_config(REPOSITORY / "text_recognition" / "config.pbtxt")
    assert spec.max_batch_size == 16
    assert [(t.name, t.dims) for t in spec.inputs] == [("x", (3, 48, -1))]
    assert [(t.name, t.dtype, t.dims) for t in spec.outputs] == [
        ("codepoints", np.int32, (-1,)),
        ("scores", np.float32, (-1,)),
    ]


def test_every_packaged_model_has_a_config_and_a_notice() -> None:
    for weights in PACKAGED_WEIGHTS:
        assert (REPOSITORY / weights.model / "config.pbtxt").is_file()
        assert "never" in (REPOSITORY / weights.model / "NOTICE").read_text()


def test_text_detection_batches_one_shape() -> None:
    spec = read_model_config(REPOSITORY / "text_detection" / "config.pbtxt")
    assert spec.platform == "onnxruntime_onnx"
    assert spec.max_batch_size == 8
    assert spec.max_queue_delay_microseconds is not None
    assert [(t.name, t.dtype, t.dims) for t in spec.inputs] == [("x", np.float32, (3, -1, -1))]
    assert [t.name for t in spec.outputs] == ["sigmoid_0.tmp_0"]


def test_yolo_has_static_batch_of_one() -> None:
    spec = read_model_config(REPOSITORY / "yolov8n" / "config.pbtxt")
    assert spec.max_batch_size == 0
    assert spec.max_queue_delay_microseconds is None
    assert spec.inputs[0].dims == (1, 3, 640, 640)
    assert spec.outputs[0].dims == (1, 4 + len(COCO_LABELS), 8400)


def test_labels_file_matches_the_part() -> None:
    lines = (REPOSITORY / "yolov8n" / "labels.txt").read_text().splitlines()
    assert tuple(lines) == COCO_LABELS


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken" / "config.pbtxt"
    path.parent.mkdir()
    path.write_text("max_batch_size: eight\n")
    with pytest.raises(BadModelConfig, match="broken"):
        read_model_config(path)


def test_model_file_is_found_in_the_latest_version(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('platform: "onnxruntime_onnx"\n')
    for version in ("1", "3"):
        (tmp_path / "m" / version).mkdir()
        (tmp_path / "m" / version / "model.onnx").write_bytes(b"x")
    spec = read_model_config(tmp_path / "m" / "config.pbtxt")
    assert spec.name == "m"
    assert spec.model_file == tmp_path / "m" / "3" / "model.onnx"


def test_install_weights_writes_once(tmp_path: Path) -> None:
    targets = [w.target(tmp_path) for w in PACKAGED_WEIGHTS]
    assert install_weights(tmp_path) == targets
    for weights, target in zip(PACKAGED_WEIGHTS, targets, strict=True):
        assert target.read_bytes() == weights.content()
    assert install_weights(tmp_path) == []


def test_text_detection_is_copied_as_it_ships(tmp_path: Path) -> None:
    install_weights(tmp_path)
    (weights,) = [w for w in PACKAGED_WEIGHTS if w.model == "text_detection"]
    assert weights.target(tmp_path).read_bytes() == weights.source().read_bytes()


def test_install_weights_replaces_a_different_file(tmp_path: Path) -> None:
    install_weights(tmp_path)
    target = PACKAGED_WEIGHTS[0].target(tmp_path)
    target.write_bytes(b"stale")
    assert install_weights(tmp_path) == [target]
    assert target.stat().st_size > 1_000_000
