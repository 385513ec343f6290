"""The local Triton launcher: what it serves, what it skips, how it stops."""

from __future__ import annotations

import json
import sysconfig
import urllib.request
from pathlib import Path

import pytest

from kpipe.local.triton.server import _libpython_env
from tests.triton.local_triton import LocalTriton, copy_configs, http_ok, start_triton


def config_of(server: LocalTriton, model: str) -> dict[str, object]:
    url = f"http://{server.url}/v2/models/{model}/config"
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.load(response))


@pytest.mark.slow
@pytest.mark.triton
def test_serves_the_config_of_the_repository(local_triton: LocalTriton) -> None:
    config = config_of(local_triton, "text_detection")
    assert config["max_batch_size"] == 8
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000  # type: ignore[index]
    assert [i["name"] for i in config["input"]] == ["x"]  # type: ignore[attr-defined]
    assert [o["dims"] for o in config["output"]] == [[1, -1, -1]]  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.triton
def test_serves_unbatched_model_with_full_dims(local_triton: LocalTriton) -> None:
    config = config_of(local_triton, "yolov8n")
    assert config["max_batch_size"] == 0
    assert [i["dims"] for i in config["input"]] == [[1, 3, 640, 640]]  # type: ignore[attr-defined]


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


def test_reexec_puts_libdir_first(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        pytest.skip("this interpreter has no shared libpython")
    libdir = sysconfig.get_config_var("LIBDIR")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/other")
    env = _libpython_env()
    assert env is not None
    assert env["LD_LIBRARY_PATH"] == f"{libdir}:/opt/other"
    monkeypatch.setenv("LD_LIBRARY_PATH", env["LD_LIBRARY_PATH"])
    assert _libpython_env() is None
