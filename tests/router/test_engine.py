from __future__ import annotations

import threading
from typing import Any

import pytest

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    RunFinished,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
)
from functions.catalog import Catalog
from router.engine import Router
from router.state import RunStatus, StepStatus
from router.store import RunQuery, Store
from router.validation import validate_spec

UPLOAD = ObjectCreated("uploads", "2026/cat photo.jpg", 1234, "etag-1", "image/jpeg")


def register(store: Store, catalog: Catalog, data: dict[str, Any]) -> None:
    store.put_pipeline(validate_spec(data, catalog))


def request_of(event: Event) -> StepRequest:
    assert event.type is EventType.STEP_REQUESTED
    return StepRequest.from_data(event.data)


def complete(
    router: Router,
    request_event: Event,
    metadata: dict[str, Any] | None = None,
    outputs: tuple[ObjectRef, ...] | None = None,
) -> list[Event]:
    """What the router emits when the part answers ``request_event`` with success."""
    req = request_of(request_event)
    assert request_event.context is not None
    result = StepOutput(outputs if outputs is not None else (req.output,), metadata or {})
    return router.on_step_completed(request_event.context, StepCompleted(result, 12.5, req.attempt))


def by_step(events: list[Event]) -> dict[str, Event]:
    return {e.context.step: e for e in events if e.context and e.type is EventType.STEP_REQUESTED}


@pytest.fixture
def router(store: Store) -> Router:
    return Router(store)


def test_upload_starts_one_run_at_the_first_step(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    [event] = router.on_object_created(UPLOAD)
    req = request_of(event)
    assert event.context is not None
    assert (event.context.pipeline, event.context.version, event.context.step) == (
        "privacy-blur",
        1,
        "small",
    )
    assert event.context.function == "resize"
    assert event.context.traceparent
    assert event.context.traceparent.startswith("00-")
    assert req.inputs == (UPLOAD.ref,)
    assert req.source == UPLOAD.ref
    assert req.output.bucket == "processed"
    assert req.output.key.startswith(f"privacy-blur/_runs/{event.context.run}/small/")
    assert not req.final
    run = store.get_run(event.context.run)
    assert run.status is RunStatus.PENDING
    assert run.steps["small"].status is StepStatus.REQUESTED


@pytest.mark.parametrize(
    "obj",
    [
        ObjectCreated("uploads", "cat.png", 1, "e"),
        ObjectCreated("other", "cat.jpg", 1, "e"),
    ],
)
def test_objects_the_trigger_does_not_match(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any], obj: ObjectCreated
) -> None:
    register(store, catalog, spec_data)
    assert router.on_object_created(obj) == []


def test_a_duplicate_notification_starts_no_second_run(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    assert len(router.on_object_created(UPLOAD)) == 1
    assert router.on_object_created(UPLOAD) == []
    _, total = store.list_runs(RunQuery())
    assert total == 1


def test_a_linear_chain_runs_to_the_end(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    [faces] = complete(router, small, {"image": {"width": 100, "height": 80}})
    faces_req = request_of(faces)
    assert faces_req.inputs == (request_of(small).output,)
    detections = {"detections": [{"label": "face", "score": 1.0, "box": [1, 2, 3, 4]}], "count": 1}
    # a detector passes its input through: its output is its input
    [blur] = complete(router, faces, detections, outputs=faces_req.inputs)
    blur_req = request_of(blur)
    assert blur_req.final
    assert blur_req.output == ObjectRef("processed", "privacy-blur/2026/cat photo.jpg")
    assert blur_req.upstream["faces"].metadata == detections
    assert set(blur_req.upstream) == {"faces", "small"}
    [finished] = complete(router, blur, {"blurred": 1})
    assert finished.type is EventType.RUN_COMPLETED
    summary = RunFinished.from_data(finished.data)
    assert summary.status == "succeeded"
    assert summary.outputs == (blur_req.output,)
    run = store.get_run(summary.run)
    assert run.status is RunStatus.SUCCEEDED
    assert all(s.status is StepStatus.SUCCEEDED for s in run.steps.values())
    assert run.steps["blur"].duration_ms == 12.5


FAN = {
    "name": "fan",
    "trigger": {"bucket": "uploads"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "small", "function": "resize", "params": {"max_side": 256}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {"id": "png", "function": "convert", "after": ["small"], "params": {"format": "png"}},
        {"id": "join", "function": "annotate", "after": ["faces", "png"]},
    ],
}


def test_fan_out_then_fan_in_joins_once(router: Router, store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    [small] = router.on_object_created(UPLOAD)
    fanned = by_step(complete(router, small))
    assert set(fanned) == {"faces", "png"}
    assert complete(router, fanned["faces"], {"count": 0}) == []
    # the same completion delivered twice changes nothing
    assert complete(router, fanned["faces"], {"count": 0}) == []
    [join] = complete(router, fanned["png"])
    req = request_of(join)
    assert req.inputs == (request_of(fanned["faces"]).output, request_of(fanned["png"]).output)
    assert set(req.upstream) == {"faces", "png", "small"}
    assert complete(router, fanned["png"]) == []


def race_to_join(routers: list[Router], fanned: dict[str, Event]) -> list[Event]:
    """Complete both parents of the join at the same moment, one per router; the joins."""
    results: list[list[Event]] = []
    barrier = threading.Barrier(2)

    def finish(router: Router, step: str) -> None:
        barrier.wait()
        results.append(complete(router, fanned[step]))

    threads = [
        threading.Thread(target=finish, args=(router, step))
        for router, step in zip(routers, ("faces", "png"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [e for batch in results for e in batch if e.context and e.context.step == "join"]


def test_concurrent_parents_start_the_join_exactly_once(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, FAN)
    [small] = router.on_object_created(UPLOAD)
    fanned = by_step(complete(router, small))
    assert len(race_to_join([router, router], fanned)) == 1


WHEN = {
    "name": "maybe-blur",
    "trigger": {"bucket": "uploads"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "faces", "function": "detect_faces"},
        {"id": "blur", "function": "blur", "after": ["faces"], "when": "faces.count > 0"},
    ],
}


def test_when_true_runs_the_step(router: Router, store: Store, catalog: Catalog) -> None:
    register(store, catalog, WHEN)
    [faces] = router.on_object_created(UPLOAD)
    [blur] = complete(router, faces, {"count": 2}, outputs=(UPLOAD.ref,))
    assert blur.context is not None
    assert blur.context.step == "blur"


def test_when_false_skips_and_copies_the_output_into_place(store: Store, catalog: Catalog) -> None:
    copies: list[tuple[ObjectRef, ObjectRef]] = []
    router = Router(store, copier=lambda src, dst: copies.append((src, dst)))
    register(store, catalog, WHEN)
    [faces] = router.on_object_created(UPLOAD)
    [finished] = complete(router, faces, {"count": 0}, outputs=(UPLOAD.ref,))
    assert finished.type is EventType.RUN_COMPLETED
    final = ObjectRef("processed", "maybe-blur/2026/cat photo.jpg")
    assert copies == [(UPLOAD.ref, final)]
    summary = RunFinished.from_data(finished.data)
    assert summary.outputs == (final,)
    assert store.get_run(summary.run).steps["blur"].status is StepStatus.SKIPPED


def test_a_failed_step_fails_the_run(router: Router, store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    [small] = router.on_object_created(UPLOAD)
    fanned = by_step(complete(router, small))
    ctx = fanned["faces"].context
    assert ctx is not None
    [failed] = router.on_step_failed(ctx, StepFailed("bad_image", "uploads/x is broken", attempt=1))
    assert failed.type is EventType.RUN_FAILED
    summary = RunFinished.from_data(failed.data)
    assert summary.error == StepFailed("bad_image", "uploads/x is broken")
    run = store.get_run(ctx.run)
    assert run.status is RunStatus.FAILED
    assert run.error == {
        "step": "faces",
        "code": "bad_image",
        "message": "uploads/x is broken",
        "retryable": False,
        "attempt": 1,
    }
    assert run.steps["join"].status is StepStatus.CANCELLED
    # the other branch finishing late neither revives the run nor starts the join
    assert complete(router, fanned["png"]) == []
    assert store.get_run(ctx.run).status is RunStatus.FAILED
    assert router.on_step_failed(ctx, StepFailed("bad_image", "again", attempt=1)) == []


def test_stale_requests_are_sent_again(
    store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    router = Router(store, redrive_after_s=0.0)
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    assert small.context is not None
    [again] = router.redrive(small.context.run)
    assert again.id == small.id
    assert again.data == small.data


def test_fail_run_is_a_no_op_on_finished_or_unknown_runs(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    assert small.context is not None
    [failed] = router.fail_run(small.context.run, {"code": "deadline_exceeded", "message": "x"})
    assert failed.type is EventType.RUN_FAILED
    assert router.fail_run(small.context.run, {"code": "x"}) == []
    assert router.fail_run("no-such-run", {"code": "x"}) == []


CHAIN = {
    "name": "chain",
    "trigger": {"bucket": "uploads"},
    "output": {"bucket": "processed"},
    "fuse": True,
    "steps": [
        {"id": "small", "function": "resize", "params": {"max_side": 256}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {"id": "blur", "function": "blur", "after": ["faces"]},
    ],
}


def test_a_fused_pipeline_is_one_request_with_every_call(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, CHAIN)
    [event] = router.on_object_created(UPLOAD)
    req = request_of(event)
    assert [c.id for c in req.calls] == ["small", "faces", "blur"]
    assert event.context is not None
    assert (event.context.step, event.context.function) == ("small", "resize")
    assert req.final
    assert req.output == ObjectRef("processed", "chain/2026/cat photo.jpg")
    per_step = {"small": {"w": 1}, "faces": {"count": 1}, "blur": {"blurred": 1}}
    [finished] = complete(router, event, {"blurred": 1, "steps": per_step})
    assert finished.type is EventType.RUN_COMPLETED
    run = store.get_run(event.context.run)
    assert {s: run.steps[s].metadata for s in per_step} == per_step
    assert run.steps["small"].outputs == ()
    assert run.steps["blur"].outputs == (req.output,)
    assert run.outputs == (req.output,)


def test_a_failed_fused_group_fails_every_member_and_retries_whole(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, CHAIN)
    [event] = router.on_object_created(UPLOAD)
    assert event.context is not None
    router.on_step_failed(event.context, StepFailed("bad_image", "x", attempt=1))
    run = store.get_run(event.context.run)
    assert {s.status for s in run.steps.values()} == {StepStatus.FAILED}
    [again] = router.retry_run(event.context.run)
    assert [c.id for c in request_of(again).calls] == ["small", "faces", "blur"]
    assert request_of(again).attempt == 2


def test_step_level_fuse_groups_only_that_pair(
    router: Router, store: Store, catalog: Catalog
) -> None:
    data = {**CHAIN, "fuse": False}
    data["steps"] = [dict(s) for s in CHAIN["steps"]]
    data["steps"][2]["fuse"] = True
    register(store, catalog, data)
    [small] = router.on_object_created(UPLOAD)
    assert [c.id for c in request_of(small).calls] == ["small"]
    [faces] = complete(router, small)
    assert [c.id for c in request_of(faces).calls] == ["faces", "blur"]
    assert request_of(faces).final


# Races show up only sometimes: try the same race several times.
@pytest.mark.parametrize("attempt", range(5))
def test_replicas_sharing_postgres_start_a_join_exactly_once(
    catalog: Catalog, postgres_url: str, attempt: int
) -> None:
    # Replicas share a server database; an SQLite file belongs to one replica.
    replicas = [Store(postgres_url), Store(postgres_url)]
    try:
        register(replicas[0], catalog, FAN)
        routers = [Router(s) for s in replicas]
        upload = ObjectCreated("uploads", f"join-{attempt}.jpg", 1, f"etag-{attempt}")
        [small] = routers[0].on_object_created(upload)
        fanned = by_step(complete(routers[0], small))
        assert len(race_to_join(routers, fanned)) == 1
    finally:
        for s in replicas:
            s.close()


def test_an_answer_to_an_earlier_attempt_is_ignored(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    ctx = small.context
    assert ctx is not None
    first_failure = StepFailed("store_unavailable", "store down", attempt=1)
    [failed] = router.on_step_failed(ctx, first_failure)
    assert failed.type is EventType.RUN_FAILED
    [retried] = router.retry_run(ctx.run)
    assert request_of(retried).attempt == 2
    # A late redelivery (or a replay) of attempt 1's answer must not settle attempt 2.
    assert router.on_step_failed(ctx, first_failure) == []
    stale = StepCompleted(StepOutput((request_of(retried).output,), {}), 1.0, attempt=1)
    assert router.on_step_completed(ctx, stale) == []
    run = store.get_run(ctx.run)
    assert (run.status, run.steps["small"].status) == (RunStatus.RUNNING, StepStatus.REQUESTED)
    done = StepCompleted(StepOutput((request_of(retried).output,), {}), 1.0, attempt=2)
    [faces] = router.on_step_completed(ctx, done)
    assert faces.context is not None
    assert faces.context.step == "faces"


@pytest.mark.parametrize(
    "output",
    [
        ObjectRef("uploads", "photos/someone-else.jpg"),
        ObjectRef("processed", "other-pipeline/x.jpg"),
        ObjectRef("processed", "privacy-blur/../other-pipeline/x.jpg"),
        ObjectRef("models", "privacy-blur/x.jpg"),
    ],
    ids=["another-upload", "another-pipeline", "dot-dot", "another-bucket"],
)
def test_an_answer_naming_objects_outside_its_run_fails_the_run_and_is_not_recorded(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any], output: ObjectRef
) -> None:
    # A compromised part holds the parts' key: the router still copies and
    # serves only objects of the run, so such an answer fails the step.
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    assert small.context is not None
    forged = StepCompleted(StepOutput((output,), {"count": 0}), 1.0, attempt=1)
    [failed] = router.on_step_completed(small.context, forged)
    assert failed.type is EventType.RUN_FAILED
    run = store.get_run(small.context.run)
    assert run.status is RunStatus.FAILED
    assert run.steps["small"].outputs == ()
    assert run.steps["small"].error is not None
    assert run.steps["small"].error["code"] == "bad_output"


def test_an_answer_for_a_step_that_was_not_requested_is_ignored(
    router: Router, store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    register(store, catalog, spec_data)
    [small] = router.on_object_created(UPLOAD)
    assert small.context is not None
    later = small.context.for_step("faces", "detect_faces")
    answer = StepCompleted(StepOutput((UPLOAD.ref,), {"count": 0}), 1.0, attempt=1)
    assert router.on_step_completed(later, answer) == []
    run = store.get_run(small.context.run)
    assert run.steps["faces"].status is StepStatus.WAITING
    assert run.steps["small"].status is StepStatus.REQUESTED
