"""The python-backend model, run in-process on a small ONNX graph (no Triton)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kpipe.local.triton._python_model import OnnxModel
from kpipe.local.triton.rendering import CpuSettings


def doubling_model(path: Path) -> Path:
    """``y = 2 * x`` and ``total = sum(x)`` per item, for ``x`` of ``[batch, 3]``."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "x"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0),
        ],
        "doubling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"]),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def config(path: Path, settings: CpuSettings, max_batch_size: int = 8) -> dict[str, Any]:
    """The model config as Triton hands it to the stub (JSON, parameters as string_value)."""
    return {
        "max_batch_size": max_batch_size,
        "input": [{"name": "x"}],
        "output": [{"name": "y"}, {"name": "total"}],
        "parameters": {
            k: {"string_value": v} for k, v in settings.parameters(doubling_model(path)).items()
        },
    }


@pytest.fixture(
    params=[CpuSettings(), CpuSettings(cpu_mem_arena=False, shrink_arena=False, mem_pattern=False)]
)
def model(request: pytest.FixtureRequest, tmp_path: Path) -> OnnxModel:
    return OnnxModel(config(tmp_path / "model.onnx", request.param))


def test_answers_one_request(model: OnnxModel) -> None:
    (out,) = model.run([{"x": np.array([[1, 2, 3]], np.float32)}])
    np.testing.assert_array_equal(out["y"], [[2, 4, 6]])
    np.testing.assert_array_equal(out["total"], [6])


def test_merged_requests_answer_as_each_alone(model: OnnxModel) -> None:
    requests = [
        {"x": np.arange(3, dtype=np.float32).reshape(1, 3)},
        {"x": np.arange(6, dtype=np.float32).reshape(2, 3) + 10},
        {"x": np.ones((1, 3), np.float32)},
    ]
    merged = model.run(requests)
    alone = [model.run([r])[0] for r in requests]
    assert [sorted(o) for o in merged] == [["total", "y"]] * 3
    for got, want in zip(merged, alone, strict=True):
        np.testing.assert_array_equal(got["y"], want["y"])
        np.testing.assert_array_equal(got["total"], want["total"])


def test_session_takes_the_rendered_threads(tmp_path: Path) -> None:
    model = OnnxModel(config(tmp_path / "model.onnx", CpuSettings(intra_op_threads=2)))
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1
    assert options.enable_cpu_mem_arena
    assert options.enable_mem_pattern
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_switch_is_on_or_off(tmp_path: Path) -> None:
    bad = config(tmp_path / "model.onnx", CpuSettings())
    bad["parameters"]["mem_pattern"] = {"string_value": "yes"}
    with pytest.raises(ValueError, match="mem_pattern"):
        OnnxModel(bad)
