"""The model repository the local CPU Triton serves, rendered from ``triton/models``.

Each ``config.pbtxt`` of the cluster's repository keeps its name, tensors,
dtypes and ``max_batch_size``; the rendered copy swaps the
``onnxruntime_onnx`` platform (which the bundled tritonserver lacks) for
the python backend running :mod:`kpipe.local.triton._python_model`, asks
for CPU instances, and carries the onnxruntime settings in its
``parameters``, so ``GET /v2/models/<name>/config`` shows what runs.

What suits a CPU (measured on a 2-core machine, see ``triton/README.md``):

- one instance per model: a second one is a second stub process and
  session, and two cores are already busy with one request;
- no dynamic batching: on the CPU a batch of N costs more than N requests
  and holds N requests' activations at once (8 clients against 1 on
  ``text_detection``: 0.31-0.60x with the batcher, 0.67-1.46x without it,
  and the model's peak 1115 MB against 215); a part that sends several
  items in one request (tiles, text lines) still gets them run as one batch;
- onnxruntime's arena on, shrunk after every run, and memory pattern on:
  allocation stays cheap (the recognizer, whose lines' width changes from
  request to request, ran 13 new widths in 12-15 s instead of 62-92 s with
  the arena off) and the arena gives its free chunks back after each run
  instead of keeping the largest request's memory;
- thread pools that sleep, not spin, between runs: 0.33 CPU s per 960 x 960
  detection instead of 0.53, on a machine whose parts need the cores.

Example:
    >>> from pathlib import Path
    >>> from kpipe.local.triton.repository import read_model_config
    >>> spec = read_model_config(Path("triton/models/text_detection/config.pbtxt"))
    >>> text = render_config(spec, Path("/m/1/model.onnx"), CpuSettings(intra_op_threads=2))
    >>> 'backend: "python"' in text and "dynamic_batching" not in text
    True
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import click

from kpipe.local.config import MODEL_REPOSITORY
from kpipe.local.triton.repository import ModelSpec, read_repository

log = logging.getLogger("kpipe.local.triton.rendering")

PYTHON_MODEL = Path(__file__).with_name("_python_model.py")


def default_threads() -> int:
    """Threads of one request: every core, up to 4 (the parts and the broker need some too)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuSettings:
    """How the local Triton runs each model on the CPU."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    instances: int = 1
    dynamic_batching: bool = False
    cpu_mem_arena: bool = True
    shrink_arena: bool = True
    mem_pattern: bool = True
    spinning: bool = False

    def parameters(self, onnx_file: Path) -> dict[str, str]:
        """The ``parameters`` of a rendered config (what :mod:`._python_model` reads)."""

        def switch(on: bool) -> str:
            return "on" if on else "off"

        return {
            "onnx_file": str(onnx_file.resolve()),
            "intra_op_threads": str(self.intra_op_threads),
            "inter_op_threads": str(self.inter_op_threads),
            "cpu_mem_arena": switch(self.cpu_mem_arena),
            "shrink_arena": switch(self.shrink_arena),
            "mem_pattern": switch(self.mem_pattern),
            "spinning": switch(self.spinning),
        }


def servable_models(repository: Path) -> list[tuple[ModelSpec, Path]]:
    """The models of ``repository`` the CPU Triton can serve, each with its ONNX file.

    Models without their file, or of a platform other than ONNX, are logged
    and skipped: the part that needs one then fails fast with ModelNotReady.
    """
    servable = []
    for spec in read_repository(repository):
        model_file = spec.model_file
        if spec.platform != "onnxruntime_onnx":
            log.warning(
                "model %s skipped: platform %r not served locally", spec.name, spec.platform
            )
        elif model_file is None:
            log.warning(
                "model %s skipped: no %s in a version directory of %s",
                spec.name,
                spec.model_filename,
                spec.directory,
            )
        else:
            servable.append((spec, model_file))
    return servable


def render_config(spec: ModelSpec, onnx_file: Path, settings: CpuSettings) -> str:
    """The ``config.pbtxt`` the CPU Triton serves for one model of the repository.

    Args:
        spec: the model as the repository's config describes it.
        onnx_file: the file the session runs.
        settings: how to run it on the CPU.

    Returns:
        The config in protobuf text format: the original message with the
        python backend, CPU instances, the batching ``settings`` choose and
        the session's parameters.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    message = pb.ModelConfig()
    text_format.Parse((spec.directory / "config.pbtxt").read_text(encoding="utf-8"), message)
    message.name = spec.name
    message.ClearField("platform")
    message.ClearField("default_model_filename")
    message.backend = "python"
    del message.instance_group[:]
    message.instance_group.add(count=settings.instances, kind=pb.ModelInstanceGroup.KIND_CPU)
    if not settings.dynamic_batching:
        message.ClearField("dynamic_batching")
    for key, value in settings.parameters(onnx_file).items():
        message.parameters[key].string_value = value
    return str(text_format.MessageToString(message))


def render_repository(
    models: list[tuple[ModelSpec, Path]], target: Path, settings: CpuSettings
) -> Path:
    """Write the served repository: ``<model>/config.pbtxt`` and ``<model>/1/model.py``.

    Args:
        models: each model's spec and its ONNX file (see
            :func:`servable_models`).
        target: an empty or missing directory.
        settings: how to run the models on the CPU.

    Returns:
        ``target``.
    """
    target.mkdir(parents=True, exist_ok=True)
    for spec, onnx_file in models:
        version = target / spec.name / "1"
        version.mkdir(parents=True)
        (target / spec.name / "config.pbtxt").write_text(
            render_config(spec, onnx_file, settings), encoding="utf-8"
        )
        (version / "model.py").symlink_to(PYTHON_MODEL)
    return target


@click.command()
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model-repository",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=MODEL_REPOSITORY,
    envvar="KPIPE_TRITON_MODELS",
    show_default=True,
    help="Triton model repository (<model>/config.pbtxt, <model>/1/model.onnx).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=default_threads(),
    envvar="KPIPE_TRITON_THREADS",
    show_default="every core, up to 4",
    help="onnxruntime threads of one request (each model has its own pool).",
)
@click.option(
    "--dynamic-batching/--no-dynamic-batching",
    default=False,
    envvar="KPIPE_TRITON_DYNAMIC_BATCHING",
    show_default=True,
    help="Keep the configs' dynamic batchers (on a CPU a merged batch runs slower).",
)
@click.option("--log-level", default="INFO", envvar="KPIPE_LOG_LEVEL", show_default=True)
def main(
    target: Path, model_repository: Path, threads: int, dynamic_batching: bool, log_level: str
) -> None:
    """Render the servable models of a Triton model repository for the CPU Triton into TARGET."""
    from kpipe.core.logs import configure_logging

    configure_logging("triton", log_level)
    settings = CpuSettings(intra_op_threads=threads, dynamic_batching=dynamic_batching)
    models = servable_models(model_repository)
    render_repository(models, target, settings)
    log.info(
        "rendered %s for the CPU (%s)",
        ", ".join(s.name for s, _ in models) or "no models",
        settings,
    )


if __name__ == "__main__":
    main()
