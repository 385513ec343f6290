"""The local Triton Inference Server: the cluster's model repository, served on the CPU.

In the cluster a GPU Triton reads ``triton/models`` with its onnxruntime
backend. The tritonserver that ``nvidia-pytriton`` bundles has only the python
backend, so this launcher reads the same ``config.pbtxt`` files and binds, for
each model whose ONNX file is present, a PyTriton model with the same name,
tensors, dtypes, batch size and dynamic batching, whose callable runs the
file with onnxruntime on the CPU. Clients see the real Triton HTTP/gRPC API
(KServe v2); readiness is ``GET /v2/health/ready`` and, per model,
``GET /v2/models/<name>/ready``.

Example:
    $ python -m kpipe.local.triton.server --http-port 8000
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import sysconfig
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from kpipe.local.config import MODEL_REPOSITORY
from kpipe.local.triton.repository import ModelSpec, TensorSpec, read_repository

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from pytriton.triton import Triton

log = logging.getLogger("kpipe.local.triton.server")

# Seconds Triton waits for in-flight requests on shutdown (PyTriton's default
# is 30, which makes every restart and every test teardown slow).
EXIT_TIMEOUT_S = 3

Arrays = dict[str, "npt.NDArray[np.generic]"]


def onnx_callable(spec: ModelSpec, model_file: Path) -> Callable[..., Arrays]:
    """An inference callable that runs ``model_file`` with onnxruntime on the CPU.

    One session per model; PyTriton calls it from one thread per model
    instance, and onnxruntime's ``run`` is thread-safe anyway.
    """
    import onnxruntime as ort
    from pytriton.decorators import batch

    options = ort.SessionOptions()
    # A laptop or CI runner has few cores and also runs the parts and the
    # broker: let one request use up to 4 of them, and run graph nodes one at a time.
    options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    # Inputs vary in size; an arena would keep the largest request's memory for good.
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(
        str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
    )
    output_names = [t.name for t in spec.outputs]

    def infer(**inputs: npt.NDArray[np.generic]) -> Arrays:
        results = session.run(output_names, inputs)
        return dict(zip(output_names, results, strict=True))

    # @batch turns PyTriton's list of requests into one stacked array per input
    # (the dynamic batcher's merged batch) and splits the outputs back.
    return batch(infer)  # type: ignore[no-any-return]


def bind_model(triton: Triton, spec: ModelSpec, model_file: Path) -> None:
    """Bind one ONNX model to a PyTriton server under its config's name, tensors and batching."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    def tensors(specs: tuple[TensorSpec, ...]) -> list[Tensor]:
        return [Tensor(name=t.name, dtype=t.dtype, shape=t.dims) for t in specs]

    if spec.max_batch_size > 0:
        config = ModelConfig(
            batching=True,
            max_batch_size=spec.max_batch_size,
            batcher=DynamicBatcher(
                max_queue_delay_microseconds=spec.max_queue_delay_microseconds or 0,
                preferred_batch_size=list(spec.preferred_batch_sizes) or None,
            ),
        )
    else:
        config = ModelConfig(batching=False)
    triton.bind(
        model_name=spec.name,
        infer_func=onnx_callable(spec, model_file),
        inputs=tensors(spec.inputs),
        outputs=tensors(spec.outputs),
        config=config,
        strict=True,
    )


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


def serve(repository: Path, host: str, http_port: int, grpc_port: int, metrics_port: int) -> None:
    """Serve every servable model of ``repository`` until SIGTERM or SIGINT."""
    from pytriton.triton import Triton, TritonConfig

    models = servable_models(repository)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    config = TritonConfig(
        http_address=host,
        http_port=http_port,
        grpc_address=host,
        grpc_port=grpc_port,
        metrics_address=host,
        metrics_port=metrics_port,
        exit_timeout_secs=EXIT_TIMEOUT_S,
    )
    with Triton(config=config) as triton:
        for spec, model_file in models:
            bind_model(triton, spec, model_file)
        triton.run()
        log.info(
            "Triton serving %s on http://%s:%d",
            ", ".join(s.name for s, _ in models) or "no models",
            host,
            http_port,
        )
        while not stop.wait(1.0):
            if not triton.is_alive():
                log.error("Triton stopped unexpectedly")
                break
    log.info("Triton stopped")


def _libpython_env() -> dict[str, str] | None:
    """The environment to re-exec with so Triton's python stub finds this libpython, or None.

    The python backend stub that tritonserver starts links ``libpython3.x.so``
    through the dynamic loader. A pyenv (or any non-system) interpreter has its
    own libpython in ``LIBDIR``; unless that directory comes first in
    ``LD_LIBRARY_PATH`` the stub loads the system's libpython and dies with
    ``'_thread.RLock' object has no attribute '_recursion_count'``. The loader
    reads ``LD_LIBRARY_PATH`` only at process start, so the launcher re-executes
    itself with a child environment instead of changing its own.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir or not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if current.split(":")[0] == libdir:
        return None
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir
    return env


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
@click.option("--log-level", default="INFO", envvar="KPIPE_LOG_LEVEL", show_default=True)
def main(
    model_repository: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    log_level: str,
) -> None:
    """Serve the ONNX models of a Triton model repository on a local CPU Triton."""
    env = _libpython_env()
    if env is not None:
        os.execve(
            sys.executable, [sys.executable, "-m", "kpipe.local.triton.server", *sys.argv[1:]], env
        )
    from kpipe.core.logs import configure_logging

    configure_logging("triton", log_level)
    serve(model_repository, host, http_port, grpc_port, metrics_port)


if __name__ == "__main__":
    main()
