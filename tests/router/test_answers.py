"""Who may answer for a step, which answer counts, and every run ends (issues 16 and 17).

The attacks come first: a compromised part holds only its own key, so the
router must refuse its answers for any other part's step, answers that name
no attempt or an old one, outputs it was not asked to write, and dead
letters of an attempt that was retried since.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    StepCompleted,
    StepFailed,
    StepOutput,
    StepRequest,
)
from eventing.http import from_http, to_http
from eventing.signing import part_principal
from functions.catalog import Catalog
from router.engine import Router
from router.outbox import Relay
from router.settings import RouterSettings
from router.state import RunStatus, StepStatus
from router.store import Store
from router.sweeper import Sweeper
from tests.router.apps import KEYS, make_client, signed
from tests.router.conftest import privacy_blur
from tests.router.test_engine import FAN, UPLOAD, by_step, complete, register, request_of

OBJECT = ObjectCreated("uploads", "someone.jpg", 10, "etag-1", "image/jpeg")


def _post(client: TestClient, event: Event, path: str = "/events", **headers: str) -> Any:
    http_headers, body = to_http(event)
    return client.post(path, headers={**http_headers, **headers}, content=body)


def _next(response: Any) -> Event:
    assert response.status_code == 200, response.text
    return from_http(dict(response.headers), response.content)


def _answer(request: Event, outputs: tuple[ObjectRef, ...], **metadata: Any) -> Event:
    req = request_of(request)
    done = StepCompleted(StepOutput(outputs, metadata), 1.0, req.attempt)
    return Event(EventType.STEP_COMPLETED, "/part", done.to_data(), request.context)


@pytest.fixture
def client(tmp_path: Path, catalog: Catalog) -> TestClient:
    client = make_client(tmp_path, catalog)
    assert client.put("/v1/pipelines/privacy-blur", json=privacy_blur()).status_code in (200, 201)
    return client


@pytest.fixture
def faces(client: TestClient) -> Event:
    """The request of the privacy pipeline's `faces` step (detect_faces), resize done."""
    small = _next(_post(client, signed(OBJECT.to_event("/s3"))))
    faces = _next(_post(client, signed(_answer(small, (request_of(small).output,)))))
    assert faces.context is not None
    assert faces.context.function == "detect_faces"
    return faces


def _steps(client: TestClient, run: str) -> dict[str, str]:
    return {s["id"]: s["status"] for s in client.get(f"/v1/runs/{run}").json()["steps"]}


def test_a_part_cannot_answer_for_another_parts_step(client: TestClient, faces: Event) -> None:
    assert faces.context is not None
    # annotate's key, claiming annotate as it must to verify: the step is detect_faces'.
    as_annotate = dataclasses.replace(faces.context, function="annotate")
    forged = dataclasses.replace(
        _answer(faces, (OBJECT.ref,), count=0, detections=[]), context=as_annotate
    )
    response = _post(client, KEYS[part_principal("annotate")].sign(forged))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    # annotate's key, claiming detect_faces: the signature is not detect_faces' key.
    claimed = _answer(faces, (OBJECT.ref,), count=0, detections=[])
    response = _post(client, KEYS[part_principal("annotate")].sign(claimed))
    assert response.status_code == 401
    # Nothing changed: the faces step still waits for detect_faces, blur was never asked.
    assert _steps(client, faces.context.run) == {
        "small": "succeeded",
        "faces": "requested",
        "blur": "waiting",
    }


def test_an_answer_naming_no_attempt_is_refused(client: TestClient, faces: Event) -> None:
    assert faces.context is not None
    done = _answer(faces, (OBJECT.ref,), count=0, detections=[])
    data = {k: v for k, v in done.data.items() if k != "attempt"}
    response = _post(client, signed(dataclasses.replace(done, data=data)))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "attempt"
    assert _steps(client, faces.context.run)["faces"] == "requested"


def test_an_answer_to_another_attempt_changes_nothing(client: TestClient, faces: Event) -> None:
    assert faces.context is not None
    done = _answer(faces, (OBJECT.ref,), count=0, detections=[])
    response = _post(client, signed(dataclasses.replace(done, data={**done.data, "attempt": 7})))
    assert response.status_code == 202
    assert _steps(client, faces.context.run)["faces"] == "requested"


@pytest.mark.parametrize(
    "output",
    [
        # Inside the pipeline's prefix, but not the key the step was asked to write.
        ObjectRef("processed", "privacy-blur/someone-else.jpg"),
        ObjectRef("processed", "privacy-blur/_runs/another-run/small/someone.jpg"),
        # The requested key with more than its extension changed.
        "requested/x.jpg",
    ],
    ids=["another-final-key", "another-runs-intermediate", "below-the-requested-key"],
)
def test_a_step_may_report_only_its_requested_key_or_its_inputs(
    router: Router, store: Store, catalog: Catalog, output: ObjectRef | str
) -> None:
    register(store, catalog, privacy_blur())
    [small] = router.on_object_created(UPLOAD)
    requested = request_of(small).output
    if isinstance(output, str):
        output = ObjectRef(requested.bucket, f"{requested.key}/x.jpg")
    [failed] = complete(router, small, outputs=(output,))
    assert failed.type is EventType.RUN_FAILED
    assert small.context is not None
    step = store.get_run(small.context.run).steps["small"]
    assert step.error is not None
    assert step.error["code"] == "bad_output"
    assert step.outputs == ()


def test_the_requested_key_with_another_extension_is_its_output(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, privacy_blur())
    [small] = router.on_object_created(UPLOAD)
    requested = request_of(small).output
    as_png = ObjectRef(requested.bucket, requested.key.removesuffix(".jpg") + ".png")
    [faces] = complete(router, small, outputs=(as_png,))
    assert request_of(faces).inputs == (as_png,)


@pytest.fixture
def router(store: Store) -> Router:
    return Router(store)


# -- dead letters --------------------------------------------------------------


def _dead_letter(client: TestClient, request: Event, status: str = "503") -> Any:
    said = base64.b64encode(b'{"error": {"message": "Triton is down"}}').decode()
    return _post(
        client,
        request,
        "/dead-letters",
        **{"ce-knativeerrorcode": status, "ce-knativeerrordata": said},
    )


def test_a_dead_letter_fails_the_run_in_kpipes_words_beside_the_brokers(
    client: TestClient, faces: Event
) -> None:
    assert faces.context is not None
    assert _dead_letter(client, faces).status_code == 202
    run = client.get(f"/v1/runs/{faces.context.run}").json()
    assert run["status"] == "failed"
    assert run["error"]["code"] == "undeliverable"
    assert run["error"]["message"] == (
        "step 'faces' could not be delivered to function 'detect_faces' after every retry"
    )
    assert run["error"]["broker_said"] == "the last answer was HTTP 503: Triton is down"


def test_a_stale_dead_letter_after_a_retry_leaves_the_retried_run_going(
    client: TestClient, faces: Event, tmp_path: Path
) -> None:
    assert faces.context is not None
    failed = StepFailed("model_not_ready", "no model", attempt=1)
    answer = Event(EventType.STEP_FAILED, "/part", failed.to_data(), faces.context)
    assert _next(_post(client, signed(answer))).type is EventType.RUN_FAILED
    # Retried (by another replica on the same database): faces is asked again, attempt 2.
    with Store(RouterSettings(KPIPE_HOME=tmp_path).database()) as store:
        [again] = Router(store).retry_run(faces.context.run)
    assert request_of(again).attempt == 2
    # The broker gives up on attempt 1's copy only now: it is not the current attempt.
    assert _dead_letter(client, faces).status_code == 202
    run = client.get(f"/v1/runs/{faces.context.run}").json()
    assert run["status"] == "running"
    assert _steps(client, faces.context.run)["faces"] == "requested"


# -- every run ends ------------------------------------------------------------


def test_a_failed_run_cancels_its_requested_steps(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, FAN)
    [small] = router.on_object_created(UPLOAD)
    fanned = by_step(complete(router, small))
    ctx = fanned["faces"].context
    assert ctx is not None
    assert store.count_requested_steps() == 2
    router.on_step_failed(ctx, StepFailed("bad_image", "broken", attempt=1))
    run = store.get_run(ctx.run)
    assert run.steps["png"].status is StepStatus.CANCELLED
    assert store.count_requested_steps() == 0  # kpipe_queue_depth goes back down


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_a_stuck_run_fails_at_its_deadline_though_it_is_redriven(
    database_url: str, catalog: Catalog
) -> None:
    # The shipped defaults, swept at the shipped interval over simulated hours:
    # re-drives must not hold a run that never answers off its deadline.
    defaults = RouterSettings()
    clock = _Clock(1_000_000.0)
    with Store(database_url, clock=clock) as store:
        router = Router(store, redrive_after_s=defaults.redrive_after_s)
        sent: list[Event] = []  # what the relay posted, in order
        sweeper = Sweeper(
            store,
            router,
            Relay(store, sent.append).drain,
            interval_s=defaults.sweep_interval_s,
            redrive_after_s=defaults.redrive_after_s,
            deadline_s=defaults.run_deadline_s,
        )
        register(store, catalog, privacy_blur())
        [first] = router.on_object_created(UPLOAD)
        assert first.context is not None
        started = clock.now
        while store.get_run(first.context.run).status is RunStatus.PENDING:
            assert clock.now - started < 3 * 3600, "the run never ended"
            clock.now += defaults.sweep_interval_s
            sweeper.sweep_once()
        run = store.get_run(first.context.run)
    redriven = [e for e in sent if e.type is EventType.STEP_REQUESTED]
    assert len(redriven) >= 3  # it was re-driven on the way...
    assert {e.id for e in redriven} == {first.id}
    assert run.status is RunStatus.FAILED  # ...and still failed on time
    assert run.error is not None
    assert run.error["code"] == "deadline_exceeded"
    late = clock.now - started - defaults.run_deadline_s
    assert 0 < late <= defaults.sweep_interval_s
    assert sent[-1].type is EventType.RUN_FAILED


def test_a_request_carries_the_source_version_of_its_run(
    router: Router, store: Store, catalog: Catalog
) -> None:
    register(store, catalog, privacy_blur())
    [small] = router.on_object_created(UPLOAD)
    assert request_of(small).source_etag == UPLOAD.etag
    assert StepRequest.from_data(small.data).source_etag == "etag-1"
