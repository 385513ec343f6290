"""The local Triton Inference Server: the cluster's model repository, served on the CPU.

In the cluster a GPU Triton reads ``triton/models`` with its onnxruntime
backend. The tritonserver that ``nvidia-pytriton`` bundles has only the python
backend, so this launcher has a child render, for each model whose ONNX file
is present, a python-backend model with the same name, tensors, dtypes and
batch size whose stub runs the file with onnxruntime (see
:mod:`kpipe.local.triton.rendering`), and runs the bundled tritonserver on
it (:mod:`kpipe.local.triton.bundled`). The processes are this launcher
(which imports little: it only waits), ``tritonserver`` and one stub per
model, each holding its own session.
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
import sys
import tempfile
from pathlib import Path
from types import FrameType

import click

from kpipe.local.triton.bundled import bundled_triton, server_arguments, server_environment

log = logging.getLogger("kpipe.local.triton.server")


def serve(
    render_options: list[str],
    *,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    log_level: str = "INFO",
) -> int:
    """Render the repository, then serve it until SIGTERM or SIGINT.

    Args:
        render_options: options of ``python -m kpipe.local.triton.rendering``
            (the repository, threads, batching).

    Returns:
        tritonserver's exit status (0 after a stop this process was asked
        for), or the renderer's when it failed.
    """
    triton = bundled_triton()
    with tempfile.TemporaryDirectory(prefix="kpipe-triton-") as workspace:
        served = Path(workspace) / "models"
        # The renderer reads the configs with protobuf, numpy and the stack's
        # settings (pydantic); in a child of its own, none of that stays in
        # this process, which only waits for tritonserver.
        rendered = subprocess.run(
            [
                sys.executable,
                "-m",
                "kpipe.local.triton.rendering",
                f"--log-level={log_level}",
                *render_options,
                str(served),
            ],
            check=False,
        )
        if rendered.returncode != 0:
            log.error("rendering the model repository failed (exit status %d)", rendered.returncode)
            return rendered.returncode
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
        log.info("Triton starting on http://%s:%d", host, http_port)
        code = process.wait()
    if code == 0:
        log.info("Triton stopped")
    else:
        log.error("Triton stopped unexpectedly (exit status %d)", code)
    return code


@click.command(context_settings={"ignore_unknown_options": True})
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
@click.option("--log-level", default="INFO", envvar="KPIPE_LOG_LEVEL", show_default=True)
@click.argument("render_options", nargs=-1, type=click.UNPROCESSED)
def main(
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    log_level: str,
    render_options: tuple[str, ...],
) -> None:
    """Serve the ONNX models of a Triton model repository on a local CPU Triton.

    RENDER_OPTIONS go to ``python -m kpipe.local.triton.rendering`` (see its
    --help): --model-repository, --threads, --dynamic-batching.
    """
    from kpipe.core.logs import configure_logging

    configure_logging("triton", log_level)
    code = serve(
        list(render_options),
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log_level=log_level,
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
