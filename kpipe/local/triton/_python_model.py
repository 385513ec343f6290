"""The python-backend model that runs one ONNX file with onnxruntime inside Triton's stub.

The launcher (:mod:`kpipe.local.triton.server`) links this file as
``<model>/1/model.py`` of every model it serves, and the model's rendered
``config.pbtxt`` names the ONNX file and the session settings in its
``parameters``. Triton's python backend starts one stub process per model
instance; the stub imports this file and calls :class:`TritonPythonModel`.
The session lives in the stub itself, so a request's tensors go from
Triton's shared memory to onnxruntime and back with no other process and
no other copy.

The stub imports this file by path, not as part of kpipe, so it imports
only numpy and onnxruntime (and the stub's own ``triton_python_backend_utils``,
only inside the stub). :class:`OnnxModel` holds what does not need the stub,
so the tests run it in-process.

Parameters (all strings, as Triton's config gives them):

- ``onnx_file``: the model file's absolute path;
- ``intra_op_threads``, ``inter_op_threads``: onnxruntime's thread pools;
- ``cpu_mem_arena``, ``shrink_arena``, ``mem_pattern``, ``spinning``: ``"on"``
  or ``"off"``; ``shrink_arena`` gives the arena's free chunks back after
  every run, so the arena makes allocation cheap without keeping the
  largest request's memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = dict[str, npt.NDArray[Any]]


def _switch(parameters: Mapping[str, str], key: str) -> bool:
    value = parameters[key]
    if value not in ("on", "off"):
        raise ValueError(f"parameter {key} must be 'on' or 'off', not {value!r}")
    return value == "on"


class OnnxModel:
    """One onnxruntime CPU session and the rendered model config it serves.

    Args:
        config: the model config as Triton hands it to the stub (JSON), with
            the launcher's ``parameters``.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        import onnxruntime as ort

        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters["intra_op_threads"])
        options.inter_op_num_threads = int(parameters["inter_op_threads"])
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_cpu_mem_arena = _switch(parameters, "cpu_mem_arena")
        options.enable_mem_pattern = _switch(parameters, "mem_pattern")
        # A spinning pool burns a core between requests, on a machine that also
        # runs the parts; off, a thread sleeps until there is work.
        spinning = "1" if _switch(parameters, "spinning") else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        self.session = ort.InferenceSession(
            parameters["onnx_file"], sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.run_options = ort.RunOptions()
        if _switch(parameters, "shrink_arena"):
            self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        self.batching = int(config.get("max_batch_size", 0)) > 0

    def run(self, requests: Sequence[Mapping[str, npt.NDArray[Any]]]) -> list[Arrays]:
        """The outputs of each request, in order.

        Requests that the dynamic batcher gave together (all of the same
        shape but the batch dimension) run as one batch, split back after.
        """
        if len(requests) == 1 or not self.batching:
            return [self._run(r) for r in requests]
        sizes = [len(r[self.input_names[0]]) for r in requests]
        merged = {n: np.concatenate([r[n] for r in requests]) for n in self.input_names}
        outputs = self._run(merged)
        bounds = np.cumsum(sizes)[:-1]
        split = {n: np.split(a, bounds) for n, a in outputs.items()}
        return [{n: split[n][i] for n in self.output_names} for i in range(len(requests))]

    def _run(self, inputs: Mapping[str, npt.NDArray[Any]]) -> Arrays:
        results = self.session.run(self.output_names, dict(inputs), self.run_options)
        return dict(zip(self.output_names, results, strict=True))


class TritonPythonModel:
    """The python backend's entry point: ``initialize``, ``execute``, ``finalize``."""

    model: OnnxModel

    def initialize(self, args: dict[str, str]) -> None:
        """Open the session for the config Triton passes (``args["model_config"]``, JSON)."""
        self.model = OnnxModel(json.loads(args["model_config"]))

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a request that fails answers its error, not the batch's."""
        import triton_python_backend_utils as pb_utils

        names = self.model.input_names
        inputs = [
            {n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in names} for r in requests
        ]
        try:
            outputs = self.model.run(inputs)
        except Exception as exc:  # onnxruntime raises its own classes, unrelated to one another
            error = pb_utils.TritonError(f"onnxruntime: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in o.items()]
            )
            for o in outputs
        ]
