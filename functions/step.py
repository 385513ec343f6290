"""The step SDK: run a step request: fetch, decode, run the part(s), encode, store.

:func:`run_request` fetches and decodes the inputs, runs the requested part
(or, fused, several parts in memory), then encodes and stores the output.
:mod:`functions.delivery` wraps it for one broker delivery.

Output keys: the output keeps the requested key's directory and stem and
takes the encoded format's extension (``.jpg``, ``.png``, ``.webp``), so a
redelivered request overwrites the same object.

Metadata of a fused group: the last step's metadata at top level, plus
``"steps": {step_id: metadata}`` for every step of the group (so ``steps`` is
a reserved key).

Example:
    >>> output_ref(ObjectRef("out", "runs/r1/cat.png"), ".jpg").key
    'runs/r1/cat.jpg'
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from eventing.contract import JSON, ObjectRef, StepCompleted, StepOutput, StepRequest
from functions.errors import StepError
from functions.images import decode, encode
from functions.part import Picture, StepContext
from functions.runtime import StepRuntime


class UnsafeOutput(StepError, ValueError):
    """The output key would overwrite the step's source or input object."""

    code = "unsafe_output"


def run_request(
    request: StepRequest, runtime: StepRuntime, traceparent: str | None = None
) -> StepCompleted:
    """Run every call of ``request`` and store the final picture.

    Args:
        request: What to run, on which inputs, and where to write.
        runtime: The store, catalogue, inference factory and image limits.
        traceparent: The step span's trace context, passed on to Triton.

    Returns:
        The output ref(s) and the metadata (see the module docstring).

    Raises:
        StepError: Any part or decode failure (UnknownFunction, BadParams,
            BadImage, ...).
        ObjectStoreError: Any store failure (ObjectMissing, StoreUnavailable, ...).
    """
    started = time.perf_counter()
    # Resolve and validate every call before any I/O: bad params fail fast.
    plan = [(call, runtime.catalog.get(call.function)) for call in request.calls]
    params = [part.parse_params(call.params) for call, part in plan]
    max_pixels = runtime.images.max_pixels
    pictures = [decode(runtime.store.get(ref), ref, max_pixels) for ref in request.inputs]
    upstream: dict[str, StepOutput] = dict(request.upstream)
    per_step: dict[str, JSON] = {}
    produced = False
    for (call, part), call_params in zip(plan, params, strict=True):
        context = StepContext(
            source=request.source,
            upstream=dict(upstream),
            inference=runtime.inference,
            step_id=call.id,
            traceparent=traceparent,
        )
        result = part.run(pictures, call_params, context)
        if result.picture is not None:
            pictures, produced = [result.picture], True
        per_step[call.id] = result.metadata
        upstream[call.id] = StepOutput((), result.metadata)
    output = _store_output(request, pictures[0], produced, runtime)
    metadata = dict(per_step[request.calls[-1].id])
    if len(request.calls) > 1:
        metadata["steps"] = per_step
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return StepCompleted(StepOutput((output,), metadata), elapsed_ms, request.attempt)


def output_ref(requested: ObjectRef, extension: str) -> ObjectRef:
    """``requested`` with its extension replaced by ``extension`` (``.jpg`` ...).

    Example:
        >>> output_ref(ObjectRef("out", "runs/r1/cat.png"), ".jpg").key
        'runs/r1/cat.jpg'
    """
    path = PurePosixPath(requested.key)
    return ObjectRef(requested.bucket, str(path.with_name(path.stem + extension)))


def _store_output(
    request: StepRequest, picture: Picture, produced: bool, runtime: StepRuntime
) -> ObjectRef:
    """Write (or copy, or pass through) the step's output; its ref."""
    source = request.inputs[0]
    if produced:
        data, content_type, extension = encode(picture)
        target = _safe(output_ref(request.output, extension), request)
        runtime.store.put(target, data, content_type)
        return target
    if not request.final:
        return source  # a detector mid-pipeline: the next step reads its input
    # A detector at the end of a pipeline: its output is a copy of its input.
    target = _safe(output_ref(request.output, PurePosixPath(source.key).suffix), request)
    runtime.store.copy(source, target)
    return target


def _safe(target: ObjectRef, request: StepRequest) -> ObjectRef:
    if target == request.source or target in request.inputs:
        raise UnsafeOutput(f"output {target} would overwrite an input of the step")
    return target
