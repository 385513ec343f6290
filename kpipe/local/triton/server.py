"""The local Triton Inference Server: the cluster's model repository, served on the CPU.

In the cluster a GPU Triton reads ``triton/models`` with its onnxruntime
backend. The tritonserver that ``nvidia-pytriton`` bundles has only the python
backend, so this launcher renders, for each model whose ONNX file is present,
a python-backend model with the same name, tensors, dtypes and batch size
whose stub runs the file with onnxruntime (see
:mod:`kpipe.local.triton.rendering`), and runs the bundled tritonserver on
it (:mod:`kpipe.local.triton.bundled`). The processes are this launcher,
``tritonserver`` and one stub per model, each holding its own session.
Clients see the real Triton HTTP/gRPC API (KServe v2); readiness is
``GET /v2/health/ready`` and, per model, ``GET /v2/models/<name>/ready``.

Example:
    $ python -m kpipe.local.triton.server --http-port 8000
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from types import FrameType

import click

from kpipe.local.config import MODEL_REPOSITORY
from kpipe.local.triton.bundled import bundled_triton, server_arguments, server_environment
from kpipe.local.triton.rendering import CpuSettings, default_threads, render_repository
from kpipe.local.triton.repository import ModelSpec, read_repository

log = logging.getLogger("kpipe.local.triton.server")


def servable_models(repository: Path) -> list[tuple[ModelSpec, Path]]:
    """The models of ``repository`` this launcher can serve, each with its ONNX file.

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


def serve(
    repository: Path,
    settings: CpuSettings,
    *,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
) -> int:
    """Serve every servable model of ``repository`` until SIGTERM or SIGINT.

    Returns:
        tritonserver's exit status: 0 after a stop that this process was asked for.
    """
    models = servable_models(repository)
    triton = bundled_triton()
    with tempfile.TemporaryDirectory(prefix="kpipe-triton-") as workspace:
        served = render_repository(models, Path(workspace) / "models", settings)
        command = [
            str(triton.server),
            *server_arguments(
                models=served,
                backends=triton.backend_directory(Path(workspace) / "backends"),
                host=host,
                http_port=http_port,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                shm_prefix=f"kpipe{os.getpid()}_",
            ),
        ]
        process = subprocess.Popen(command, env=server_environment(triton.libs, dict(os.environ)))

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            process.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info(
            "Triton serving %s on http://%s:%d (%s)",
            ", ".join(s.name for s, _ in models) or "no models",
            host,
            http_port,
            settings,
        )
        code = process.wait()
    if code == 0:
        log.info("Triton stopped")
    else:
        log.error("Triton stopped unexpectedly (exit status %d)", code)
    return code


@click.command()
@click.option(
    "--model-repository",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=MODEL_REPOSITORY,
    envvar="KPIPE_TRITON_MODELS",
    show_default=True,
    help="Triton model repository (<model>/config.pbtxt, <model>/1/model.onnx).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    envvar="KPIPE_TRITON_HOST",
    show_default=True,
    help="Address all three endpoints bind to.",
)
@click.option(
    "--http-port", type=int, default=8000, envvar="KPIPE_TRITON_HTTP_PORT", show_default=True
)
@click.option(
    "--grpc-port", type=int, default=8001, envvar="KPIPE_TRITON_GRPC_PORT", show_default=True
)
@click.option(
    "--metrics-port", type=int, default=8002, envvar="KPIPE_TRITON_METRICS_PORT", show_default=True
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=default_threads(),
    envvar="KPIPE_TRITON_THREADS",
    show_default="every core, up to 4",
    help="onnxruntime threads of one request (each model's own pool).",
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
    model_repository: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    threads: int,
    dynamic_batching: bool,
    log_level: str,
) -> None:
    """Serve the ONNX models of a Triton model repository on a local CPU Triton."""
    from kpipe.core.logs import configure_logging

    configure_logging("triton", log_level)
    settings = CpuSettings(intra_op_threads=threads, dynamic_batching=dynamic_batching)
    code = serve(
        model_repository,
        settings,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
