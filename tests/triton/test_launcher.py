"""The local Triton launcher: what it serves, the processes it runs, how it stops."""

from __future__ import annotations

import json
import sysconfig
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from functions.inference import TritonInferenceClient
from kpipe.local.triton.bundled import MALLOC_MMAP_THRESHOLD, bundled_triton, server_environment
from kpipe.local.triton.memory import argv, role, sample_peaks, tree, triton_memory
from kpipe.local.triton.memory import main as memory_main
from kpipe.local.triton.rendering import default_threads
from tests.triton.conftest import MODELS
from tests.triton.local_triton import LocalTriton, copy_configs, http_ok, start_triton


def config_of(server: LocalTriton, model: str) -> dict[str, Any]:
    url = f"http://{server.url}/v2/models/{model}/config"
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.load(response))


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.decode().split("=", 1) for e in raw.split(b"\0") if b"=" in e)


@pytest.mark.slow
@pytest.mark.triton
def test_serves_the_config_of_the_repository(local_triton: LocalTriton) -> None:
    config = config_of(local_triton, "text_detection")
    assert config["max_batch_size"] == 8
    assert [i["name"] for i in config["input"]] == ["x"]
    assert [o["dims"] for o in config["output"]] == [[1, -1, -1]]
    assert config["backend"] == "python"


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.parametrize("model", MODELS)
def test_runs_each_model_on_one_cpu_instance_without_a_batcher(
    local_triton: LocalTriton, model: str
) -> None:
    config = config_of(local_triton, model)
    assert [(g["count"], g["kind"]) for g in config["instance_group"]] == [(1, "KIND_CPU")]
    assert "dynamic_batching" not in config
    parameters = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert parameters == {
        "onnx_file": parameters["onnx_file"],
        "intra_op_threads": str(default_threads()),
        "inter_op_threads": "1",
        "cpu_mem_arena": "on",
        "shrink_arena": "on",
        "mem_pattern": "on",
        "spinning": "off",
    }
    assert Path(parameters["onnx_file"]).is_file()


@pytest.mark.slow
@pytest.mark.triton
def test_serves_unbatched_model_with_full_dims(local_triton: LocalTriton) -> None:
    config = config_of(local_triton, "yolov8n")
    assert config["max_batch_size"] == 0
    assert [i["dims"] for i in config["input"]] == [[1, 3, 640, 640]]


@pytest.mark.slow
@pytest.mark.triton
def test_runs_tritonserver_and_one_stub_per_model(local_triton: LocalTriton) -> None:
    launcher = local_triton.process.pid
    roles = sorted(role(pid, launcher) for pid in tree(launcher))
    assert roles == sorted(["launcher", "tritonserver", *(f"stub:{m}" for m in MODELS)])
    (server,) = [p for p in tree(launcher) if role(p, launcher) == "tritonserver"]
    stubs = [p for p in tree(launcher) if role(p, launcher).startswith("stub:")]
    assert {Path(argv(p)[0]).name for p in stubs} == {"triton_python_backend_stub"}
    for pid in [server, *stubs]:
        assert environ(pid)["MALLOC_MMAP_THRESHOLD_"] == str(MALLOC_MMAP_THRESHOLD)


@pytest.mark.slow
@pytest.mark.triton
def test_the_launcher_loads_no_runtime_and_no_parser(local_triton: LocalTriton) -> None:
    maps = Path(f"/proc/{local_triton.process.pid}/maps").read_text()
    for library in ("onnxruntime", "numpy", "protobuf", "grpc", "pydantic_core"):
        assert library not in maps


@pytest.mark.slow
@pytest.mark.triton
def test_memory_counts_every_process_once(local_triton: LocalTriton) -> None:
    rows = triton_memory(local_triton.process.pid)
    assert {r.role for r in rows} >= {"launcher", "tritonserver", "stub:face_detection"}
    for row in rows:
        assert 0 < row.pss_kib <= row.rss_kib <= row.hwm_kib
        assert row.pss_anon_kib + row.pss_shmem_kib <= row.pss_kib


@pytest.mark.slow
@pytest.mark.triton
def test_memory_peaks_per_role_and_of_the_tree(local_triton: LocalTriton) -> None:
    peaks = sample_peaks(local_triton.process.pid, 0.5, every_s=0.1)
    assert peaks.samples >= 2
    assert set(peaks.by_role) == {"launcher", "tritonserver", *(f"stub:{m}" for m in MODELS)}
    assert max(peaks.by_role.values()) <= peaks.tree_pss_kib <= peaks.tree_rss_kib
    printed = CliRunner().invoke(memory_main, [str(local_triton.process.pid)]).output
    assert "stub:face_detection" in printed
    assert printed.splitlines()[-1].startswith("total")


def statistics(server: LocalTriton, model: str) -> tuple[int, int]:
    """(requests, executions) Triton counted for ``model``."""
    url = f"http://{server.url}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        (stats,) = json.load(response)["model_stats"]
    return int(stats["inference_count"]), int(stats["execution_count"])


def detect(url: str, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.generic]:
    with TritonInferenceClient(url, timeout_s=120) as client:
        return client.infer("text_detection", {"x": tensor}, ["sigmoid_0.tmp_0"])["sigmoid_0.tmp_0"]


@pytest.mark.slow
@pytest.mark.triton
def test_dynamic_batching_on_request_merges_requests_and_splits_the_answers(
    triton_repository: Path, tmp_path: Path, local_triton: LocalTriton
) -> None:
    rng = np.random.default_rng(7)
    tensors = [rng.uniform(-1, 1, (1, 3, 96, 96)).astype(np.float32) for _ in range(8)]
    alone = [detect(local_triton.url, t) for t in tensors]
    server = start_triton(
        triton_repository, tmp_path / "triton.log", ["--dynamic-batching", "--threads", "1"]
    )
    try:
        server.wait_ready(["text_detection"])
        config = config_of(server, "text_detection")
        with ThreadPoolExecutor(len(tensors)) as pool:
            merged = list(pool.map(lambda t: detect(server.url, t), tensors))
        requests, executions = statistics(server, "text_detection")
    finally:
        server.stop(timeout_s=20)
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert config["parameters"]["intra_op_threads"]["string_value"] == "1"
    assert requests == len(tensors)
    assert executions < requests
    for got, want in zip(merged, alone, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.triton
def test_without_a_batcher_each_request_runs_alone(local_triton: LocalTriton) -> None:
    before = statistics(local_triton, "text_recognition")
    lines = np.zeros((3, 3, 48, 64), np.float32)

    def recognize(_: int) -> None:
        with TritonInferenceClient(local_triton.url, timeout_s=120) as client:
            client.infer("text_recognition", {"x": lines}, ["codepoints"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(recognize, range(4)))
    requests, executions = statistics(local_triton, "text_recognition")
    assert (requests - before[0], executions - before[1]) == (12, 4)


@pytest.mark.slow
@pytest.mark.triton
def test_skips_model_without_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    repository = copy_configs(tmp_path / "models", ["yolov8n"])
    server = start_triton(repository, tmp_path / "triton.log")
    try:
        server.wait_ready([])
        assert not http_ok(f"http://{server.url}/v2/models/yolov8n/ready")
    finally:
        code = server.stop(timeout_s=20)
    assert code == 0
    log = (tmp_path / "triton.log").read_text()
    assert "model yolov8n skipped" in log
    assert "Triton stopped" in log


@pytest.mark.slow
@pytest.mark.triton
def test_a_repository_that_cannot_be_rendered_stops_the_launcher(tmp_path: Path) -> None:
    server = start_triton(tmp_path / "missing", tmp_path / "triton.log")
    assert server.process.wait(60) != 0
    assert "rendering the model repository failed" in (tmp_path / "triton.log").read_text()


def test_stubs_find_this_libpython_and_this_environment() -> None:
    libs = bundled_triton().libs
    env = server_environment(libs, {"LD_LIBRARY_PATH": "/opt/other", "PATH": "/usr/bin"})
    paths = env["LD_LIBRARY_PATH"].split(":")
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        assert paths[0] == sysconfig.get_config_var("LIBDIR")
    assert paths[-2:] == [str(libs), "/opt/other"]
    assert env["PATH"].endswith(":/usr/bin")
    assert (Path(env["PATH"].split(":")[0]) / "python3").exists()
