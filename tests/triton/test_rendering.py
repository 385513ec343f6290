"""The configs the CPU Triton serves, rendered from the repository's."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from kpipe.local.triton.rendering import (
    PYTHON_MODEL,
    CpuSettings,
    render_config,
    render_repository,
)
from kpipe.local.triton.repository import read_model_config, read_repository
from tests.triton.local_triton import REPOSITORY

ONNX = Path("/models/x/1/model.onnx")


def rendered(model: str, settings: CpuSettings) -> pb.ModelConfig:
    spec = read_model_config(REPOSITORY / model / "config.pbtxt")
    message = pb.ModelConfig()
    text_format.Parse(render_config(spec, ONNX, settings), message)
    return message


def original(model: str) -> pb.ModelConfig:
    message = pb.ModelConfig()
    text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(), message)
    return message


@pytest.mark.parametrize("model", [s.name for s in read_repository(REPOSITORY)])
def test_keeps_name_tensors_and_batch_size(model: str) -> None:
    served, cluster = rendered(model, CpuSettings()), original(model)
    assert served.name == cluster.name == model
    assert served.max_batch_size == cluster.max_batch_size
    assert list(served.input) == list(cluster.input)
    assert list(served.output) == list(cluster.output)


@pytest.mark.parametrize("model", [s.name for s in read_repository(REPOSITORY)])
def test_runs_on_the_python_backend_on_cpu_instances(model: str) -> None:
    served = rendered(model, CpuSettings(instances=2))
    assert (served.platform, served.backend) == ("", "python")
    assert [(g.count, g.kind) for g in served.instance_group] == [
        (2, pb.ModelInstanceGroup.KIND_CPU)
    ]


def test_drops_the_batcher_by_default_and_keeps_it_on_request() -> None:
    assert not rendered("face_detection", CpuSettings()).HasField("dynamic_batching")
    kept = rendered("text_detection", CpuSettings(dynamic_batching=True)).dynamic_batching
    assert kept.max_queue_delay_microseconds == 2000
    assert list(kept.preferred_batch_size) == [4, 8]


def test_the_repository_configs_keep_their_batchers_for_the_gpu() -> None:
    for model in ("face_detection", "text_detection", "text_recognition"):
        cluster = original(model)
        assert cluster.HasField("dynamic_batching")
        assert [g.kind for g in cluster.instance_group] == [pb.ModelInstanceGroup.KIND_GPU]


def test_carries_the_session_settings() -> None:
    settings = CpuSettings(intra_op_threads=3, cpu_mem_arena=False, mem_pattern=False)
    parameters = {k: v.string_value for k, v in rendered("yolov8n", settings).parameters.items()}
    assert parameters == {
        "onnx_file": str(ONNX),
        "intra_op_threads": "3",
        "inter_op_threads": "1",
        "cpu_mem_arena": "off",
        "shrink_arena": "on",
        "mem_pattern": "off",
        "spinning": "off",
    }


def test_repository_links_the_model_of_every_version(tmp_path: Path) -> None:
    specs = read_repository(REPOSITORY)[:2]
    target = render_repository(
        [(s, tmp_path / f"{s.name}.onnx") for s in specs], tmp_path / "served", CpuSettings()
    )
    assert sorted(p.name for p in target.iterdir()) == [s.name for s in specs]
    for spec in specs:
        assert (target / spec.name / "1" / "model.py").resolve() == PYTHON_MODEL
        assert read_model_config(target / spec.name / "config.pbtxt").name == spec.name
