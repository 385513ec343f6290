"""Builds a YOLO-shaped ONNX model whose output is known in advance.

The graph takes ``images`` ``[1, 3, 640, 640]`` and returns ``output0``
``[1, 84, 8400]`` equal to a constant plus ``0 * sum(images)``, so the input is
really consumed but the detections are fixed: the tests can check decoding,
letterbox mapping, NMS and filters against a real Triton without weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

CLASSES = 80
ANCHORS = 8400


class Anchor(NamedTuple):
    """One non-empty anchor: box centre and size in letterboxed 640x640 pixels."""

    cx: float
    cy: float
    w: float
    h: float
    class_id: int
    score: float


# COCO ids: 0 person, 2 car, 15 cat, 16 dog, 56 chair.
KNOWN_ANCHORS = (
    Anchor(320, 320, 200, 100, 15, 0.90),  # a cat
    Anchor(330, 325, 200, 100, 15, 0.60),  # the same cat, lower score: NMS drops it
    Anchor(330, 325, 200, 100, 16, 0.55),  # same place, another class: kept
    Anchor(150, 250, 80, 60, 0, 0.40),  # a person
    Anchor(500, 300, 60, 60, 2, 0.20),  # a car under the default confidence (0.25)
    Anchor(600, 120, 100, 60, 56, 0.50),  # a chair reaching into the padding: clipped
)


def known_output() -> npt.NDArray[np.float32]:
    """The ``[1, 84, 8400]`` output holding :data:`KNOWN_ANCHORS` (all other scores 0)."""
    out = np.zeros((1, 4 + CLASSES, ANCHORS), dtype=np.float32)
    for i, a in enumerate(KNOWN_ANCHORS):
        # Spread the anchors over the tensor, as a real head would.
        column = 1000 * i + 7
        out[0, :4, column] = (a.cx, a.cy, a.w, a.h)
        out[0, 4 + a.class_id, column] = a.score
    return out


def build(path: Path) -> Path:
    """Write the constant-output YOLO model to ``path`` (an ONNX file)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constant = numpy_helper.from_array(known_output(), name="known")
    zero = numpy_helper.from_array(np.zeros((), dtype=np.float32), name="zero")
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["known", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + CLASSES, ANCHORS])],
        initializer=[constant, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime kpipe supports
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
