"""``kpipe models push`` against a real S3-compatible server on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from minio import Minio

from kpipe.deploy.cli import models
from kpipe.deploy.models import NoModels, push_models
from kpipe.local.s3.server import S3Server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3(free_port: Callable[[], int]) -> Iterator[S3Server]:
    with S3Server(port=free_port(), buckets=()) as server:
        yield server


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A copy of triton/models' configs, with a small stand-in for each weights file."""
    for config in (REPO_ROOT / "triton" / "models").glob("*/config.pbtxt"):
        model = tmp_path / config.parent.name
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_bytes(config.read_bytes())
    (tmp_path / "yolov8n" / "labels.txt").write_text("person\nbicycle\n")
    (tmp_path / "text_detection" / "1" / "model.onnx").write_bytes(b"\x08\x07onnx")
    (tmp_path / "text_detection" / "1" / "model.onnx.partial").write_bytes(b"half")
    return tmp_path


def _client(server: S3Server) -> Minio:
    return Minio(server.endpoint, "minioadmin", "minioadmin", secure=False, region="us-east-1")


def test_push_lands_every_model_file_under_its_model(s3: S3Server, repository: Path) -> None:
    client = _client(s3)
    pushed = push_models(client, repository)
    keys = sorted(o.object_name for o in client.list_objects("models", recursive=True))
    configs = [f"{c.parent.name}/config.pbtxt" for c in repository.glob("*/config.pbtxt")]
    assert len(configs) >= 4  # every model of triton/models, not a fixed list
    # The partial download is left out; models without weights still land their config.
    assert keys == sorted([*configs, "text_detection/1/model.onnx", "yolov8n/labels.txt"])
    assert sorted(p.key for p in pushed) == keys
    body = client.get_object("models", "text_detection/1/model.onnx").read()
    assert body == b"\x08\x07onnx"
    assert b"KIND_GPU" in client.get_object("models", "yolov8n/config.pbtxt").read()


def test_cli_push_with_cpu_rewrites_instance_kinds(
    s3: S3Server, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIO_ENDPOINT", s3.endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", "minioadmin")
    monkeypatch.setenv("MINIO_SECRET_KEY", "minioadmin")
    result = CliRunner().invoke(
        models, ["push", "--model-repository", str(repository), "--prefix", "triton/", "--cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "pushed s3://models/triton/text_detection/config.pbtxt" in result.output
    config = _client(s3).get_object("models", "triton/text_detection/config.pbtxt").read()
    assert b"KIND_CPU" in config
    assert b"KIND_GPU" not in config


def test_a_directory_without_models_is_refused(s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(NoModels):
        push_models(_client(s3), tmp_path)
