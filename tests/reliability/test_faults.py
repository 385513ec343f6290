"""Faults at the service level: duplicate deliveries, a router restart, a stuck run,
and an object store that is briefly down while the broker delivers to a real part."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    PipelineContext,
    StepCall,
    StepCompleted,
    StepOutput,
    StepRequest,
)
from eventing.http import from_http, to_http
from eventing.objectstore import MinioStore
from eventing.signing import part_principal
from functions.catalog import Catalog
from functions.delivery import handle_http
from functions.runtime import StepRuntime
from kpipe.core.settings import ImageSettings, ObjectStoreSettings
from kpipe.local.broker import BrokerConfig, DeliverySpec, Trigger, create_broker_app
from kpipe.local.s3.server import S3Server
from router.api import create_app
from router.state import RunStatus
from tests.eventing.conftest import Subscriber
from tests.reliability._apps import router_services
from tests.reliability._images import noise_jpeg
from tests.router.apps import KEYS, TRUSTED, signed

SPEC: dict[str, Any] = {
    "name": "two-steps",
    "trigger": {"bucket": "uploads", "prefix": "in/"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "small", "function": "resize", "params": {"width": 8}},
        {"id": "png", "function": "convert", "after": ["small"], "params": {"format": "png"}},
    ],
}
SOURCE = ObjectRef("uploads", "down/a.jpg")
OBJECT = ObjectCreated("uploads", "in/a.jpg", 10, "etag-a", "image/jpeg")


def _post(client: TestClient, event: Event) -> Event | None:
    """Deliver ``event`` to the router, signed as its sender signs it; its reply, if any."""
    headers, body = to_http(signed(event))
    response = client.post("/events", headers=headers, content=body)
    assert response.status_code in (200, 202), response.text
    return from_http(dict(response.headers), response.content) if response.content else None


def _completed(request: Event, key: str) -> Event:
    """The part's answer to ``request``: its requested output, with ``key``'s extension."""
    assert request.context is not None
    asked = StepRequest.from_data(request.data)
    output = ObjectRef(
        asked.output.bucket,
        str(PurePosixPath(asked.output.key).with_suffix(PurePosixPath(key).suffix)),
    )
    done = StepCompleted(StepOutput((output,), {}), 1.0, asked.attempt)
    return Event(EventType.STEP_COMPLETED, "/part", done.to_data(), context=request.context)


@pytest.fixture
def sink(subscriber: Callable[..., Subscriber]) -> Subscriber:
    return subscriber((202, b"", {}))


def test_a_duplicate_step_completed_changes_nothing(
    tmp_path: Path, catalog: Catalog, sink: Subscriber
) -> None:
    with TestClient(create_app(router_services(tmp_path, catalog, sink.url))) as client:
        assert client.put("/v1/pipelines/two-steps", json=SPEC).status_code == 200
        first = _post(client, OBJECT.to_event("/s3"))
        assert first is not None
        completed = _completed(first, "two-steps/_runs/x/small/a.jpg")
        second = _post(client, completed)
        assert second is not None
        assert second.context is not None
        assert second.context.step == "png"
        # The broker delivers the same step.completed again (same source and id):
        # it may not have stored the answer, so it gets the same one, and no new work.
        again = _post(client, completed)
        assert again is not None
        assert (again.id, again.data) == (second.id, second.data)
        run = client.get(f"/v1/runs/{first.context.run if first.context else ''}").json()
    assert [(s["id"], s["status"], s["attempt"]) for s in run["steps"]] == [
        ("small", "succeeded", 1),
        ("png", "requested", 1),
    ]
    assert sink.count == 0  # nothing was re-sent out of band


def test_a_restarted_router_resumes_the_run(
    tmp_path: Path, catalog: Catalog, sink: Subscriber
) -> None:
    # The first router starts the run, then dies before the part's answer is consumed...
    with TestClient(create_app(router_services(tmp_path, catalog, sink.url))) as first:
        first.put("/v1/pipelines/two-steps", json=SPEC)
        request = _post(first, OBJECT.to_event("/s3"))
    assert request is not None
    assert request.context is not None
    # ...and the request itself was lost with it. A new router on the same database:
    services = router_services(tmp_path, catalog, sink.url, KPIPE_REDRIVE_AFTER_S=0.01)
    with TestClient(create_app(services)) as second:
        time.sleep(0.05)
        resent = services.sweeper.sweep_once()
        assert [e.id for e in resent] == [request.id]  # the same request, the same id
        assert [from_http(r.headers, r.body).id for r in sink.received] == [request.id]
        png = _post(second, _completed(request, "two-steps/_runs/x/small/a.jpg"))
        assert png is not None
        finished = _post(second, _completed(png, "two-steps/in/a.png"))
        assert finished is not None
        assert finished.type is EventType.RUN_COMPLETED
        run = second.get(f"/v1/runs/{request.context.run}").json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == [{"bucket": "processed", "key": "two-steps/in/a.png"}]


def test_a_router_that_died_before_the_broker_stored_its_answer_gives_it_again(
    tmp_path: Path, catalog: Catalog, sink: Subscriber
) -> None:
    # The router commits the run's progress and its answer, and dies before the
    # broker stores that answer: the broker still holds the part's event.
    with TestClient(create_app(router_services(tmp_path, catalog, sink.url))) as first:
        first.put("/v1/pipelines/two-steps", json=SPEC)
        request = _post(first, OBJECT.to_event("/s3"))
        assert request is not None
        completed = _completed(request, "two-steps/_runs/x/small/a.jpg")
        lost = _post(first, completed)
    assert lost is not None
    # A new router on the same database, with its re-drive minutes away, gets the
    # redelivery: the run goes on at once, with the same request.
    services = router_services(tmp_path, catalog, sink.url, KPIPE_REDRIVE_AFTER_S=600)
    with TestClient(create_app(services)) as second:
        again = _post(second, completed)
        assert again is not None
        assert (again.id, again.data) == (lost.id, lost.data)
        finished = _post(second, _completed(again, "two-steps/in/a.png"))
    assert finished is not None
    assert finished.type is EventType.RUN_COMPLETED
    assert sink.count == 0  # no re-drive, nothing out of band


def test_a_run_stuck_past_its_deadline_is_failed(
    tmp_path: Path, catalog: Catalog, sink: Subscriber
) -> None:
    services = router_services(tmp_path, catalog, sink.url, KPIPE_RUN_DEADLINE_S=5)
    with TestClient(create_app(services)) as client:
        client.put("/v1/pipelines/two-steps", json=SPEC)
        request = _post(client, OBJECT.to_event("/s3"))
        assert request is not None
        assert request.context is not None
        emitted = services.sweeper.sweep_once(now=time.time() + 3600)
        run = services.store.get_run(request.context.run)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["code"] == "deadline_exceeded"
    assert [e.type for e in emitted] == [EventType.RUN_FAILED]
    assert [from_http(r.headers, r.body).type for r in sink.received] == [EventType.RUN_FAILED]
    assert services.sweeper.sweep_once(now=time.time() + 7200) == []  # failed once only


class _Part:
    """The resize part behind HTTP, counting deliveries and the statuses it answered."""

    def __init__(self, runtime: StepRuntime) -> None:
        self.statuses: list[int] = []
        self.app = Starlette(routes=[Route("/", self._handle, methods=["POST"])])
        self._runtime = runtime

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        reply = await run_in_threadpool(
            handle_http, dict(request.headers), body, "resize", self._runtime
        )
        self.statuses.append(reply.status)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)


@pytest.fixture
def s3_port(free_port: Callable[[], int]) -> int:
    return free_port()


@pytest.fixture
def s3_down_then_up(s3_port: int, tmp_path: Path) -> Iterator[Callable[[], S3Server]]:
    """Stores ``SOURCE`` and stops the object store; the callable brings it back, same port."""
    servers: list[S3Server] = []
    first = S3Server(port=s3_port, buckets=("uploads", "processed"), data_dir=tmp_path)
    first.start()
    with MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=first.endpoint)) as store:
        store.put(SOURCE, noise_jpeg(), "image/jpeg")
    first.stop()  # its objects are on disk: they are there when it is back

    def bring_up() -> S3Server:
        server = S3Server(port=s3_port, buckets=("uploads", "processed"), data_dir=tmp_path)
        server.start()
        servers.append(server)
        return server

    yield bring_up
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_a_store_briefly_down_is_retried_and_no_output_is_lost(
    serve: Callable[[Any], str],
    subscriber: Callable[..., Subscriber],
    wait_for: Callable[..., None],
    s3_port: int,
    s3_down_then_up: Callable[[], S3Server],
) -> None:
    settings = ObjectStoreSettings.model_validate(
        {"MINIO_ENDPOINT": f"127.0.0.1:{s3_port}", "MINIO_TIMEOUT_S": 2}
    )
    with MinioStore(settings, attempts=0, backoff_s=0.01) as store:
        runtime = StepRuntime(
            store=store,
            catalog=Catalog(),
            images=ImageSettings(),
            trusted=TRUSTED,
            signer=KEYS[part_principal("resize")],
        )
        part = _Part(runtime)
        router = subscriber((202, b"", {}))
        delivery = DeliverySpec(retry=8, backoff_policy="exponential", backoff_delay_s=0.05)
        config = BrokerConfig(
            (
                Trigger("part", serve(part.app), {"type": EventType.STEP_REQUESTED.value}),
                Trigger("router", router.url, {"type": EventType.STEP_COMPLETED.value}),
            ),
            delivery,
        )
        broker = serve(create_broker_app(config))
        source = SOURCE
        request = StepRequest(
            source=source,
            inputs=(source,),
            calls=(StepCall("small", "resize", {"width": 8}),),
            output=ObjectRef("processed", "p/down/a.jpg"),
            final=True,
        )
        context = PipelineContext("p", 1, "run-down", "small", "resize")
        event = Event(EventType.STEP_REQUESTED, "/router", request.to_data(), context=context)
        headers, body = to_http(signed(event))
        assert httpx.post(broker, headers=headers, content=body).status_code == 202
        wait_for(lambda: part.statuses[:2] == [503, 503])  # down: redelivery asked for
        server = s3_down_then_up()
        server_store = MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=server.endpoint))
        wait_for(lambda: router.count >= 1, timeout_s=20)
        time.sleep(0.2)
        [completed] = [from_http(r.headers, r.body) for r in router.received]
        assert completed.type is EventType.STEP_COMPLETED
        assert part.statuses[-1] == 200
        assert set(part.statuses[:-1]) == {503}
        assert server_store.get(ObjectRef("processed", "p/down/a.jpg"))[:2] == b"\xff\xd8"
        server_store.close()
