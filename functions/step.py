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

from eventing.contract import (
    JSON,
    ObjectRef,
    PipelineContext,
    StepCompleted,
    StepOutput,
    StepRequest,
)
from eventing.objectstore import SourceChanged
from functions.errors import OutOfScope, StepError
from functions.images import decode, encode
from functions.inference import InferenceClient, TimedInference
from functions.part import Picture, StepContext
from functions.runtime import StepRuntime


class UnsafeOutput(StepError, ValueError):
    """The output key would overwrite the step's source or input object."""

    code = "unsafe_output"


def run_request(
    request: StepRequest,
    runtime: StepRuntime,
    context: PipelineContext,
    traceparent: str | None = None,
) -> StepCompleted:
    """Run every call of ``request`` and store the final picture.

    The scope check is the last line: every key read, and the key really
    written (after its extension changed), is checked against ``context``'s
    run and the runtime's buckets right before the store is called.

    Args:
        request: What to run, on which inputs, and where to write.
        runtime: The store, catalogue, inference factory, image limits and buckets.
        context: The run and step the request is for (its signed attributes).
        traceparent: The step span's trace context, passed on to Triton.

    Returns:
        The output ref(s) and the metadata (see the module docstring).

    Raises:
        StepError: Any part or decode failure (UnknownFunction, BadParams,
            BadImage, ...), OutOfScope (a key outside the run).
        ObjectStoreError: Any store failure (ObjectMissing, StoreUnavailable, ...).
    """
    started, cpu_started = time.perf_counter(), time.thread_time()
    timed: TimedInference | None = None

    def inference() -> InferenceClient:
        # Opened on first use only, and timed: the step reports its Triton time.
        nonlocal timed
        if runtime.inference is None:
            raise RuntimeError("this step was started without an inference client")
        if timed is None:
            timed = TimedInference(runtime.inference())
        return timed

    # Resolve and validate every call before any I/O: bad params fail fast.
    plan = [(call, runtime.catalog.get(call.function)) for call in request.calls]
    params = [part.parse_params(call.params) for call, part in plan]
    max_pixels = runtime.images.max_pixels
    for ref in request.inputs:
        _check(runtime.scope.read_violation(ref, request.source, context), context)
    pictures = [decode(_read(ref, request, runtime), ref, max_pixels) for ref in request.inputs]
    upstream: dict[str, StepOutput] = dict(request.upstream)
    per_step: dict[str, JSON] = {}
    produced = False
    for (call, part), call_params in zip(plan, params, strict=True):
        step_context = StepContext(
            source=request.source,
            upstream=dict(upstream),
            inference=inference if runtime.inference is not None else None,
            step_id=call.id,
            traceparent=traceparent,
        )
        result = part.run(pictures, call_params, step_context)
        if result.picture is not None:
            pictures, produced = [result.picture], True
        per_step[call.id] = result.metadata
        upstream[call.id] = StepOutput((), result.metadata)
    output = _store_output(request, pictures[0], produced, runtime, context)
    metadata = dict(per_step[request.calls[-1].id])
    if len(request.calls) > 1:
        metadata["steps"] = per_step
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    cpu_ms = (time.thread_time() - cpu_started) * 1000.0
    inference_ms = timed.waited_s * 1000.0 if timed is not None else 0.0
    produced_output = StepOutput((output,), metadata)
    return StepCompleted(produced_output, elapsed_ms, request.attempt, cpu_ms, inference_ms)


def output_ref(requested: ObjectRef, extension: str) -> ObjectRef:
    """``requested`` with its extension replaced by ``extension`` (``.jpg`` ...).

    Example:
        >>> output_ref(ObjectRef("out", "runs/r1/cat.png"), ".jpg").key
        'runs/r1/cat.jpg'
    """
    path = PurePosixPath(requested.key)
    return ObjectRef(requested.bucket, str(path.with_name(path.stem + extension)))


def _store_output(
    request: StepRequest,
    picture: Picture,
    produced: bool,
    runtime: StepRuntime,
    context: PipelineContext,
) -> ObjectRef:
    """Write (or copy, or pass through) the step's output; its ref."""
    source = request.inputs[0]
    if produced:
        data, content_type, extension = encode(picture)
        target = _safe(output_ref(request.output, extension), request, runtime, context)
        _current(request, runtime)
        runtime.store.put(target, data, content_type)
        return target
    if not request.final:
        return source  # a detector mid-pipeline: the next step reads its input
    # A detector at the end of a pipeline: its output is a copy of its input.
    suffix = PurePosixPath(source.key).suffix
    target = _safe(output_ref(request.output, suffix), request, runtime, context)
    _current(request, runtime)
    runtime.store.copy(source, target)
    return target


def _read(ref: ObjectRef, request: StepRequest, runtime: StepRuntime) -> bytes:
    """An input's bytes; the run's source only in the version the run was started for."""
    pinned = request.source_etag if ref == request.source else None
    return runtime.store.get(ref, if_match=pinned)


def _current(request: StepRequest, runtime: StepRuntime) -> None:
    """Before a final write: the source is still the version the run is for (else SourceChanged).

    So the run of an overwritten upload never replaces the newer upload's output.
    """
    if request.final and request.source_etag:
        found = runtime.store.etag(request.source)
        if found != request.source_etag:
            raise SourceChanged(request.source, request.source_etag, found)


def _check(violation: str | None, context: PipelineContext) -> None:
    if violation is not None:
        raise OutOfScope(f"run {context.run}: {violation}")


def _safe(
    target: ObjectRef, request: StepRequest, runtime: StepRuntime, context: PipelineContext
) -> ObjectRef:
    """``target``, the key really written, once it is inside the run and overwrites no input."""
    _check(runtime.scope.write_violation(target, context, request.final), context)
    if target == request.source or target in request.inputs:
        raise UnsafeOutput(f"output {target} would overwrite an input of the step")
    return target
