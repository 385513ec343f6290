"""Reading a Triton model repository: each ``<model>/config.pbtxt`` as a typed spec.

The local launcher (:mod:`kpipe.local.triton.server`) serves each model under the
same name, tensors, dtypes and batching as the ``config.pbtxt`` that the
cluster's GPU Triton reads, so the parts cannot tell the two apart. Configs
are parsed with protobuf's text format into Triton's own ``ModelConfig``
message, never by hand.

Example:
    >>> from pathlib import Path
    >>> [m.name for m in read_repository(Path("triton/models"))]
    ['face_detection', 'text_detection', 'text_recognition', 'yolov8n']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kpipe.core.errors import KpipeError

# Triton's DataType enum names -> numpy dtypes (TYPE_STRING/BYTES are object arrays).
_DTYPES: dict[str, np.dtype[np.generic]] = {
    "TYPE_BOOL": np.dtype(np.bool_),
    "TYPE_UINT8": np.dtype(np.uint8),
    "TYPE_UINT16": np.dtype(np.uint16),
    "TYPE_UINT32": np.dtype(np.uint32),
    "TYPE_UINT64": np.dtype(np.uint64),
    "TYPE_INT8": np.dtype(np.int8),
    "TYPE_INT16": np.dtype(np.int16),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP64": np.dtype(np.float64),
    "TYPE_STRING": np.dtype(np.object_),
}


class BadModelConfig(KpipeError, ValueError):
    """A ``config.pbtxt`` that cannot be parsed or uses what the launcher cannot serve."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, numpy dtype and dims (without the batch dim when batching)."""

    name: str
    dtype: np.dtype[np.generic]
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """What a ``config.pbtxt`` says about one model."""

    name: str
    platform: str
    directory: Path
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # None: no dynamic_batching block; else its max queue delay.
    max_queue_delay_microseconds: int | None = None
    preferred_batch_sizes: tuple[int, ...] = ()
    model_filename: str = "model.onnx"

    @property
    def model_file(self) -> Path | None:
        """The model file of the latest numeric version (Triton's default policy), if any."""
        versions = sorted(
            (int(p.name) for p in self.directory.iterdir() if p.is_dir() and p.name.isdigit()),
            reverse=True,
        )
        for version in versions:
            path = self.directory / str(version) / self.model_filename
            if path.is_file():
                return path
        return None


def read_model_config(path: Path) -> ModelSpec:
    """Parse one ``config.pbtxt``.

    Args:
        path: ``<repository>/<model>/config.pbtxt``.

    Returns:
        The model's spec; its name defaults to the directory name, as in Triton.

    Raises:
        BadModelConfig: the text is not a valid ``ModelConfig`` or uses a dtype
            the launcher does not map.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), message)
    except text_format.ParseError as exc:
        raise BadModelConfig(path, str(exc)) from None

    def tensors(items: object) -> tuple[TensorSpec, ...]:
        specs = []
        for item in items:  # type: ignore[attr-defined]
            type_name = model_config_pb2.DataType.Name(item.data_type)
            if type_name not in _DTYPES:
                raise BadModelConfig(path, f"tensor {item.name}: unsupported {type_name}")
            specs.append(TensorSpec(item.name, _DTYPES[type_name], tuple(item.dims)))
        return tuple(specs)

    batching = message.dynamic_batching if message.HasField("dynamic_batching") else None
    return ModelSpec(
        name=message.name or path.parent.name,
        platform=message.platform or message.backend,
        directory=path.parent,
        max_batch_size=int(message.max_batch_size),
        inputs=tensors(message.input),
        outputs=tensors(message.output),
        max_queue_delay_microseconds=(
            int(batching.max_queue_delay_microseconds) if batching is not None else None
        ),
        preferred_batch_sizes=tuple(batching.preferred_batch_size) if batching else (),
        model_filename=message.default_model_filename or "model.onnx",
    )


def read_repository(repository: Path) -> list[ModelSpec]:
    """Every model of a repository, sorted by directory name.

    Raises:
        BadModelConfig: one of the configs is invalid.
        FileNotFoundError: ``repository`` is not a directory.
    """
    if not repository.is_dir():
        raise FileNotFoundError(f"no Triton model repository at {repository}")
    return [read_model_config(p) for p in sorted(repository.glob("*/config.pbtxt"))]
