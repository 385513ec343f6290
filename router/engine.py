"""Routing: turn each incoming event into the events that come next.

The router is stateless between events; a run's progress lives in the store.
Every handler is idempotent: a redelivered or duplicated event changes
nothing and, at most, re-sends requests that look lost.

Example:
    >>> from router.store import Store
    >>> router = Router(Store("sqlite://"))
    >>> router.handle(some_object_created_event)  # doctest: +SKIP
    [Event(type=<EventType.STEP_REQUESTED ...>), ...]
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    PipelineContext,
    RunFinished,
    StepCall,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
    step_event_id,
)
from eventing.errors import MalformedEvent
from kpipe.core import budget
from router import keys
from router.conditions import BadCondition, parse_condition
from router.errors import Conflict, RouterError, RunNotFound
from router.rollouts import Rollout, RolloutMode, Rollouts
from router.spec import PipelineSpec, StepSpec
from router.state import RunState, RunStatus, StepState, StepStatus
from router.store import Emission, Store, StoredPipeline

log = logging.getLogger(__name__)

SOURCE = "/kpipe/router"
# Copies an object server-side; used when a terminal step is skipped, so the
# pipeline's output still appears at its final key.
Copier = Callable[[ObjectRef, ObjectRef], None]


def _step_of(run: RunState, ctx: PipelineContext) -> StepState:
    """The run's step an event is about; MalformedEvent if the run has no such step."""
    step = run.steps.get(ctx.step)
    if step is None:
        raise MalformedEvent(f"run {ctx.run} has no step {ctx.step!r}", field="kpipestep")
    return step


# What a part may change of its requested output key: the extension only
# (``.png`` for ``.jpg``), as :func:`functions.step.output_ref` does.
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]{1,8})?")


def _with_other_extension(ref: ObjectRef, requested: ObjectRef) -> bool:
    """Whether ``ref`` is ``requested`` with at most its extension changed.

    Example:
        >>> _with_other_extension(ObjectRef("o", "p/cat.png"), ObjectRef("o", "p/cat.jpg"))
        True
        >>> _with_other_extension(ObjectRef("o", "p/cat.jpg/x.png"), ObjectRef("o", "p/cat.jpg"))
        False
    """
    head, dot, extension = requested.key.rpartition(".")
    stem = head if dot and "/" not in extension else requested.key
    return (
        ref.bucket == requested.bucket
        and ref.key.startswith(stem)
        and _EXTENSION.fullmatch(ref.key[len(stem) :]) is not None
    )


class ForeignAnswer(RouterError, PermissionError):
    """A step's answer from a part that is not the step's function; answered 403."""

    code = "forbidden"


def _check_sender(step: StepState, ctx: PipelineContext, attempt: int | None) -> bool:
    """Whether an answer is for ``step``'s current attempt; raises when it may not answer at all.

    The signature proved which part sent it (``kpipefunction``'s key): that
    part must be the step's function, and the answer must name the attempt
    it answers. An answer to an earlier attempt (a late redelivery, or a
    replay) is ignored: it may say the step failed while the retry succeeds.

    Raises:
        ForeignAnswer: the answer comes from another function's part.
        MalformedEvent: it names no attempt.
    """
    if ctx.function != step.function:
        raise ForeignAnswer(
            f"step {step.step_id!r} runs {step.function!r}; {ctx.function!r} may not answer for it"
        )
    if attempt is None:
        raise MalformedEvent("a step's answer must name the attempt it answers", field="attempt")
    if attempt != step.attempt:
        log.info(
            "ignored the answer to attempt %d of %s (now %d)", attempt, step.step_id, step.attempt
        )
        return False
    return True


def joined(run: RunState, step: StepSpec) -> bool:
    """The fan-in join: a step may start once every step in its ``after`` is done.

    Done is succeeded or skipped; a step with several ``after`` runs once,
    when the last of them finishes (the store's run lock keeps two replicas
    that finish two parents at once from both starting it).
    """
    return all(run.steps[parent].status.done for parent in step.after)


def new_traceparent() -> str:
    """A fresh W3C trace context for a run that arrived without one."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


class Router:
    """Decides, for each event, which events come next, and records run progress."""

    def __init__(
        self,
        store: Store,
        copier: Copier | None = None,
        redrive_after_s: float = budget.REDRIVE_AFTER_S,
        reads_upstream: Callable[[str], bool] = lambda _function: True,
    ):
        self._store = store
        self._copier = copier
        self._redrive_after_s = redrive_after_s
        # Whether a function reads its upstream steps' metadata (Part.reads_upstream).
        self._reads_upstream = reads_upstream
        self.rollouts = Rollouts(store)
        self._spec = lru_cache(maxsize=256)(self._load_spec)

    def _load_spec(self, name: str, version: int) -> PipelineSpec:
        # Versions are immutable, so caching them is always safe.
        return self._store.get_pipeline(name, version).spec

    def handle(self, event: Event, reply: bool = False) -> list[Event]:
        """The events ``event`` leads to (possibly none), committed in the outbox.

        With ``reply``, the first of them is the answer to ``event``, which
        the caller returns to the broker; the relay posts the others. A
        redelivery of an event already answered (the broker did not store the
        answer, say because this process died) gets the same answer again
        (:meth:`_again`).
        """
        reply_to = event.id if reply else None
        if event.type is EventType.OBJECT_CREATED:
            return self.on_object_created(ObjectCreated.from_data(event.data), reply_to)
        if event.context is None or not event.context.step:
            raise MalformedEvent(f"{event.type} needs the kpiperun and kpipestep extensions")
        if event.type is EventType.STEP_COMPLETED:
            done = StepCompleted.from_data(event.data)
            return self.on_step_completed(event.context, done, reply_to=reply_to)
        if event.type is EventType.STEP_FAILED:
            failure = StepFailed.from_data(event.data)
            return self.on_step_failed(event.context, failure, reply_to=reply_to)
        raise MalformedEvent(f"the router does not consume {event.type}", field="type")

    def _again(self, reply_to: str | None, run: RunState) -> list[Event]:
        """The answer already given to ``reply_to``, for its redelivery; [] if it needs none.

        Looked up only once a handler found its event already acted on, so
        the first delivery of an event pays nothing for it. A step request
        is given again only while its step still waits for that attempt's
        answer: once the step moved on, the request evidently arrived, and
        the event is a late duplicate (MinIO's at-least-once notifications).
        """
        answered = self._store.reply_of(reply_to) if reply_to is not None else None
        if answered is None:
            return []
        if answered.type is EventType.STEP_REQUESTED and answered.context is not None:
            step = run.steps.get(answered.context.step)
            attempt = StepRequest.from_data(answered.data).attempt
            if step is None or step.status is not StepStatus.REQUESTED or step.attempt != attempt:
                return []
        log.info("answered %s again: it was redelivered", reply_to)
        return [answered]

    def _change(
        self, run_id: str, change: Callable[[RunState], list[Event]], reply_to: str | None = None
    ) -> list[Event]:
        """Apply ``change`` to the locked run; what it emits commits with it."""
        emission = Emission(reply_to)
        with self._store.run_tx(run_id, emission) as run:
            emission.events = change(run)
        return emission.events

    # -- object.created ----------------------------------------------------

    def on_object_created(self, obj: ObjectCreated, reply_to: str | None = None) -> list[Event]:
        """Start the runs of every registered pipeline whose trigger matches the object.

        One run of the active version, unless a rollout says otherwise: a
        shadow adds a run of its candidate, a canary runs the candidate
        instead for the keys in its share (router/rollouts.py).
        """
        events: list[Event] = []
        rollouts = self.rollouts.active()
        for stored in self._store.list_pipelines():
            for spec, version, role in self._versions_for(stored, rollouts.get(stored.name), obj):
                if spec.trigger.matches(obj.bucket, obj.key):
                    # Only the first event of all is the answer; the relay posts the rest.
                    answer = None if events else reply_to
                    events += self.start_run(spec, version, obj, answer, role)
        return events

    def _versions_for(
        self, stored: StoredPipeline, rollout: Rollout | None, obj: ObjectCreated
    ) -> list[tuple[PipelineSpec, int, str]]:
        """The (spec, version, role) of each run an upload starts for one pipeline."""
        live = (stored.spec, stored.version, "live")
        if rollout is None:
            return [live]
        candidate = self._spec(stored.name, rollout.version)
        if rollout.mode is RolloutMode.SHADOW:
            return [live, (candidate, rollout.version, "shadow")]
        if rollout.takes_instead(keys.canary_share(obj.key)):
            return [(candidate, rollout.version, "canary")]
        return [live]

    def start_run(
        self,
        spec: PipelineSpec,
        version: int,
        obj: ObjectCreated,
        reply_to: str | None = None,
        role: str = "live",
    ) -> list[Event]:
        """Create the run (once per object version) and request its first steps."""
        now = self._store.clock()
        run_id = keys.run_id(spec.name, version, obj.bucket, obj.key, obj.etag)
        run = RunState(
            id=run_id,
            pipeline=spec.name,
            version=version,
            source=obj.ref,
            etag=obj.etag,
            status=RunStatus.PENDING,
            created_at=now,
            updated_at=now,
            traceparent=new_traceparent(),
            steps={s.id: StepState(s.id, s.function) for s in spec.steps},
            role=role,
        )
        events = self._advance(spec, run, now)
        if self._store.create_run(run, Emission(reply_to, events)):
            log.info("run %s started: %s on %s", run_id, spec.name, obj.ref)
            return events
        # A duplicate notification: the run exists. Its answer again, or requests that look lost.
        return self._change(
            run_id,
            lambda existing: self._again(reply_to, existing) or self._redrive(spec, existing, now),
            reply_to,
        )

    # -- step.completed / step.failed --------------------------------------

    def on_step_completed(
        self, ctx: PipelineContext, done: StepCompleted, reply_to: str | None = None
    ) -> list[Event]:
        """Record a finished step and request every step that can now run."""
        spec = self._spec(ctx.pipeline, ctx.version)
        now = self._store.clock()

        def change(run: RunState) -> list[Event]:
            step = _step_of(run, ctx)
            if not _check_sender(step, ctx, done.attempt):
                return []
            if step.status.final:
                return self._again(reply_to, run) or self._redrive(spec, run, now)
            if step.status is not StepStatus.REQUESTED:
                log.warning(
                    "ignored an answer for step %s of run %s: not requested", ctx.step, ctx.run
                )
                return []
            escaped = self._outputs_outside(spec, run, ctx.step, done)
            if escaped is not None:
                # Signed by the step's own part, but naming objects it was not
                # asked to write: never recorded, so the router copies nothing.
                return self._record_failure(spec, run, ctx, StepFailed("bad_output", escaped), now)
            self._record_success(spec, run, ctx.step, done, now)
            if run.status is RunStatus.FAILED:
                return []  # a branch that finished after another failed the run
            run.status = RunStatus.RUNNING
            return self._advance(spec, run, now)

        return self._change(ctx.run, change, reply_to)

    @staticmethod
    def _record_success(
        spec: PipelineSpec, run: RunState, head: str, done: StepCompleted, now: float
    ) -> None:
        """Mark a step, or every member of its fused group, succeeded."""
        members = spec.groups.get(head, (head,))
        per_step = done.result.metadata.get("steps") if len(members) > 1 else None
        for member in members:
            state = run.steps[member]
            state.status = StepStatus.SUCCEEDED
            state.finished_at = now
            last = member == members[-1]
            # A fused group makes no intermediate objects: only its last step has outputs.
            state.outputs = done.result.outputs if last else ()
            if isinstance(per_step, dict) and isinstance(per_step.get(member), dict):
                state.metadata = per_step[member]
            else:
                state.metadata = done.result.metadata
            # A fused group is one part call: its cost is the last member's to report.
            state.duration_ms = done.duration_ms if last else None
            state.cpu_ms = done.cpu_ms if last else None
            state.inference_ms = done.inference_ms if last else None

    def _outputs_outside(
        self, spec: PipelineSpec, run: RunState, head: str, done: StepCompleted
    ) -> str | None:
        """Why a step's reported outputs are not what it was asked to write, or None.

        Each output is one of the step's own inputs (a detector mid-pipeline
        passes its input on) or its requested output key, with at most the
        extension changed: the router copies and serves what a step reports.
        """
        members = spec.groups.get(head, (head,))
        last = spec.by_id[members[-1]]
        requested = self._output_ref(spec, run, last, last.id in spec.terminal_steps)
        inputs = self._inputs(run, spec.by_id[head])
        for ref in done.result.outputs:
            if ref not in inputs and not _with_other_extension(ref, requested):
                return f"step {head!r} reported output {ref}; it was asked to write {requested}"
        return None

    def on_step_failed(
        self,
        ctx: PipelineContext,
        failure: StepFailed,
        broker_said: str | None = None,
        reply_to: str | None = None,
    ) -> list[Event]:
        """Record a failed step (its whole fused group) and fail its run.

        Only the current attempt of a step still requested fails: the answer
        (or dead letter) of an attempt that was retried since changes nothing.
        ``broker_said`` is what the broker added to a dead letter (unsigned),
        kept beside kpipe's own words in the run's error.
        """
        spec = self._spec(ctx.pipeline, ctx.version)
        now = self._store.clock()

        def change(run: RunState) -> list[Event]:
            step = _step_of(run, ctx)
            if not _check_sender(step, ctx, failure.attempt):
                return []
            if step.status is not StepStatus.REQUESTED:
                return self._again(reply_to, run)
            return self._record_failure(spec, run, ctx, failure, now, broker_said)

        return self._change(ctx.run, change, reply_to)

    def _record_failure(
        self,
        spec: PipelineSpec,
        run: RunState,
        ctx: PipelineContext,
        failure: StepFailed,
        now: float,
        broker_said: str | None = None,
    ) -> list[Event]:
        """Mark a step (its whole fused group) failed and fail its run, once."""
        error: dict[str, object] = dict(failure.to_data())
        if broker_said:
            error["broker_said"] = broker_said
        for member in spec.groups.get(ctx.step, (ctx.step,)):
            state = run.steps[member]
            if not state.status.final:
                state.status = StepStatus.FAILED
                state.error = error
                state.finished_at = now
        if run.status is RunStatus.FAILED:
            return []
        return [self._fail(run, {"step": ctx.step, **error}, now)]

    def fail_run(self, run_id: str, error: Mapping[str, object]) -> list[Event]:
        """Fail a run from outside a step (a dead letter, a deadline); no-op if it ended."""
        now = self._store.clock()

        def change(run: RunState) -> list[Event]:
            if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                return []
            return [self._fail(run, error, now)]

        try:
            return self._change(run_id, change)
        except RunNotFound:
            return []

    def retry_run(self, run_id: str) -> list[Event]:
        """Restart a failed run from its failed steps; steps that succeeded are not run again.

        Raises:
            RunNotFound: no such run.
            Conflict: the run has not failed.
        """
        run = self._store.get_run(run_id)
        spec = self._spec(run.pipeline, run.version)
        now = self._store.clock()

        def change(locked: RunState) -> list[Event]:
            if locked.status is not RunStatus.FAILED:
                raise Conflict(f"run {run_id} is {locked.status.value}; only failed runs retry")
            for step in locked.steps.values():
                if step.status in (StepStatus.FAILED, StepStatus.CANCELLED):
                    step.status = StepStatus.WAITING
                    step.error = None
                    step.finished_at = None
            locked.status = RunStatus.RUNNING
            locked.error = None
            locked.finished_at = None
            # attempts grow, so the retried requests get new event ids
            return self._advance(spec, locked, now)

        return self._change(run_id, change)

    # -- the state machine -------------------------------------------------

    def _fail(self, run: RunState, error: Mapping[str, object], now: float) -> Event:
        run.status = RunStatus.FAILED
        run.error = dict(error)
        run.finished_at = now
        # Nothing is left waiting or requested: a failed run holds no queued work
        # (a late answer to a cancelled step finds it final and changes nothing).
        for other in run.steps.values():
            if other.status in (StepStatus.WAITING, StepStatus.REQUESTED):
                other.status = StepStatus.CANCELLED
        failure = StepFailed(str(error.get("code", "failed")), str(error.get("message", "")))
        return self._run_event(run, EventType.RUN_FAILED, failure)

    def _inputs(self, run: RunState, step: StepSpec) -> tuple[ObjectRef, ...]:
        if not step.after:
            return (run.source,)
        return tuple(ref for parent in step.after for ref in run.steps[parent].outputs)

    def _advance(self, spec: PipelineSpec, run: RunState, now: float) -> list[Event]:
        """Request (or skip) every waiting step whose parents are all done."""
        events: list[Event] = []
        progressed = True
        while progressed:
            progressed = False
            for step in spec.steps:
                state = run.steps[step.id]
                if state.status is not StepStatus.WAITING or not joined(run, step):
                    continue
                progressed = True
                upstream = {a: run.steps[a].result for a in spec.ancestors(step.id)}
                try:
                    holds = self._condition_holds(step, upstream)
                except BadCondition as exc:
                    # A stored condition that no longer compiles fails its run, with why.
                    error = {"step": step.id, "code": exc.code, "message": exc.message}
                    return [*events, self._fail(run, error, now)]
                if holds:
                    attempt = state.attempt + 1
                    for member in spec.groups[step.id]:
                        run.steps[member].status = StepStatus.REQUESTED
                        run.steps[member].attempt = attempt
                        run.steps[member].requested_at = now
                    events.append(self._request(spec, run, step, upstream))
                else:
                    self._skip(spec, run, step, now)
        if all(s.status.final for s in run.steps.values()) and run.status is not RunStatus.FAILED:
            run.status = RunStatus.SUCCEEDED
            run.finished_at = now
            run.outputs = tuple(o for t in spec.terminal_steps for o in run.steps[t].outputs)
            events.append(self._run_event(run, EventType.RUN_COMPLETED))
        return events

    @staticmethod
    def _condition_holds(step: StepSpec, upstream: dict[str, StepOutput]) -> bool:
        metadata = {k: v.metadata for k, v in upstream.items()}
        return all(parse_condition(text).evaluate(metadata) for text in step.when)

    def _skip(self, spec: PipelineSpec, run: RunState, step: StepSpec, now: float) -> None:
        state = run.steps[step.id]
        state.status = StepStatus.SKIPPED
        state.finished_at = now
        state.outputs = self._inputs(run, step)
        if step.id in spec.terminal_steps and self._copier is not None:
            # A skipped last step still leaves the pipeline's output at its final key.
            final = self._output_ref(spec, run, step, final=True).key
            copies = []
            for ref in state.outputs:
                dest = ObjectRef(spec.output.bucket, keys.with_extension_of(final, ref.key))
                self._copier(ref, dest)
                copies.append(dest)
            state.outputs = tuple(copies)

    def _output_ref(
        self, spec: PipelineSpec, run: RunState, step: StepSpec, final: bool
    ) -> ObjectRef:
        if final:
            several = len(spec.terminal_steps) > 1
            shadow = run.version if run.role == "shadow" else None
            key = keys.final_key(spec.name, run.source.key, step.id if several else None, shadow)
        else:
            key = keys.intermediate_key(spec.name, run.id, step.id, run.source.key)
        return ObjectRef(spec.output.bucket, key)

    def _request(
        self,
        spec: PipelineSpec,
        run: RunState,
        step: StepSpec,
        upstream: dict[str, StepOutput],
    ) -> Event:
        state = run.steps[step.id]
        members = [spec.by_id[m] for m in spec.groups[step.id]]
        last = members[-1]
        final = last.id in spec.terminal_steps
        if not any(self._reads_upstream(m.function) for m in members):
            upstream = {}  # the conditions were the router's; the part reads none of it
        ctx = PipelineContext(
            run.pipeline, run.version, run.id, step.id, step.function, run.traceparent
        )
        request = StepRequest(
            source=run.source,
            inputs=self._inputs(run, step),
            calls=tuple(StepCall(m.id, m.function, m.params) for m in members),
            output=self._output_ref(spec, run, last, final),
            final=final,
            upstream=upstream,
            attempt=state.attempt,
            source_etag=run.etag or None,
        )
        return Event(
            type=EventType.STEP_REQUESTED,
            source=SOURCE,
            data=request.to_data(),
            context=ctx,
            id=step_event_id(ctx, state.attempt, EventType.STEP_REQUESTED),
            subject=str(run.source),
        )

    def _redrive(self, spec: PipelineSpec, run: RunState, now: float) -> list[Event]:
        """Re-send requests that have waited too long for an answer (lost events)."""
        events = []
        for step in spec.steps:
            state = run.steps[step.id]
            stale = (state.requested_at or now) <= now - self._redrive_after_s
            is_head = spec.groups[step.id][0] == step.id
            if is_head and state.status is StepStatus.REQUESTED and stale:
                state.requested_at = now
                upstream = {a: run.steps[a].result for a in spec.ancestors(step.id)}
                events.append(self._request(spec, run, step, upstream))
        return events

    def redrive(self, run_id: str) -> list[Event]:
        """Re-send a run's lost requests, if any (used by the stuck-run sweeper)."""
        run = self._store.get_run(run_id)
        spec = self._spec(run.pipeline, run.version)
        return self._change(run_id, lambda locked: self._redrive(spec, locked, self._store.clock()))

    def _run_event(self, run: RunState, kind: EventType, error: StepFailed | None = None) -> Event:
        ctx = PipelineContext(run.pipeline, run.version, run.id, traceparent=run.traceparent)
        summary = RunFinished(
            run=run.id,
            pipeline=run.pipeline,
            version=run.version,
            status=run.status.value,
            source=run.source,
            outputs=run.outputs,
            error=error,
        )
        return Event(
            type=kind,
            source=SOURCE,
            data=summary.to_data(),
            context=ctx,
            id=f"{run.id}.{kind.value.removeprefix('io.kpipe.')}",
            subject=str(run.source),
        )
