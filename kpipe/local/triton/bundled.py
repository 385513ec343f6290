"""The tritonserver that ``nvidia-pytriton`` bundles: its files, environment and command line.

The wheel carries Triton Inference Server 2.51 (``pytriton/tritonserver``:
the binary, the python backend and one python stub per CPython version)
and the shared libraries it links (``nvidia_pytriton.libs``). The launcher
runs that binary itself, on a repository it renders (see
:mod:`kpipe.local.triton.rendering`), so nothing of PyTriton's Python API
runs: no proxy model in the stubs, no process holding the sessions beside
them, no tensor store copying every tensor once more.

Example:
    >>> files = bundled_triton()  # doctest: +SKIP
    >>> files.server.name  # doctest: +SKIP
    'tritonserver'
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from kpipe.core.errors import KpipeError

# glibc serves an allocation above this from its own mmap and returns it on
# free. Left to itself it raises the threshold to the largest block freed so
# far (up to 32 MiB), so after the first big tensor every one below that size
# comes from the heap and its pages stay with the process. Fixed, every tensor
# and every arena chunk onnxruntime frees goes back. Measured in one process
# running the recognizer on 13 new line widths, CenterFace on 5 new picture
# sizes and on tiles, with the shrinking arena: 132 MB resident after, against
# 255 MB, at about the same speed; and 304 MB against 633 MB for the whole
# launcher after the workload of triton/README.md.
MALLOC_MMAP_THRESHOLD = 1 << 20

STUB_NAME = "triton_python_backend_stub"

# Seconds Triton waits for in-flight requests on shutdown (its default is 30,
# which makes every restart and every test teardown slow).
EXIT_TIMEOUT_S = 3


class TritonNotInstalled(KpipeError, FileNotFoundError):
    """The nvidia-pytriton wheel, or a file the launcher needs from it, is not installed."""

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"the local Triton needs {missing} from the nvidia-pytriton wheel "
            "(pip install -e '.[local]')"
        )
        self.missing = missing


@dataclass(frozen=True)
class BundledTriton:
    """The files of the bundled tritonserver that the launcher uses."""

    server: Path
    libs: Path
    python_backend: Path
    stub: Path

    def backend_directory(self, target: Path) -> Path:
        """A ``--backend-directory`` with the python backend and this interpreter's stub.

        The backend looks for ``triton_python_backend_stub`` beside its own
        library, and the wheel keeps one stub per CPython version apart, so
        the directory links the three files together.
        """
        python = target / "python"
        python.mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            (python / name).symlink_to(self.python_backend / name)
        (python / "triton_python_backend_stub").symlink_to(self.stub)
        return target


def bundled_triton() -> BundledTriton:
    """Where the installed wheel keeps what the launcher runs.

    Raises:
        TritonNotInstalled: the wheel is missing, or lacks a stub for this Python.
    """
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalled("the pytriton package")
    package = Path(next(iter(spec.submodule_search_locations)))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = BundledTriton(
        server=package / "tritonserver" / "bin" / "tritonserver",
        libs=package.parent / "nvidia_pytriton.libs",
        python_backend=package / "tritonserver" / "backends" / "python",
        stub=package / "tritonserver" / "python_backend_stubs" / version / STUB_NAME,
    )
    for path in (files.server, files.libs, files.python_backend, files.stub):
        if not path.exists():
            raise TritonNotInstalled(str(path))
    return files


def server_environment(libs: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment of tritonserver and of the python stubs it starts.

    Args:
        libs: the wheel's directory of shared libraries.
        base: the environment to extend (the launcher's own).

    Returns:
        ``base`` with, in ``LD_LIBRARY_PATH``, this interpreter's ``LIBDIR``
        first (a stub that loads the system's libpython instead dies with
        ``'_thread.RLock' object has no attribute '_recursion_count'``) and the
        wheel's libraries; this interpreter's ``bin`` first in ``PATH`` (the
        stub's embedded Python finds its prefix, so this environment's
        packages, from the ``python3`` on ``PATH``); and glibc's fixed mmap
        threshold (see :data:`MALLOC_MMAP_THRESHOLD`).
    """
    env = dict(base)
    libraries = [str(libs)]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libraries.insert(0, libdir)
    if env.get("LD_LIBRARY_PATH"):
        libraries.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libraries)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MALLOC_MMAP_THRESHOLD_"] = str(MALLOC_MMAP_THRESHOLD)
    return env


def server_arguments(
    *,
    models: Path,
    backends: Path,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    shm_prefix: str,
) -> list[str]:
    """tritonserver's options: the rendered repository on the three endpoints, CPU only.

    ``shm_prefix`` names the shared memory between Triton and its stubs;
    two servers on one machine need different ones.
    """
    return [
        f"--model-repository={models}",
        f"--backend-directory={backends}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        # The stubs' shared memory starts small and grows by what a request needs.
        "--backend-config=python,shm-default-byte-size=4194304",
        "--backend-config=python,shm-growth-byte-size=1048576",
        "--strict-model-config=true",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        # No GPU here: no pinned host memory pool (256 MiB by default).
        "--pinned-memory-pool-byte-size=0",
        f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        "--log-verbose=0",
    ]
