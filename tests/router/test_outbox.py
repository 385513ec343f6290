"""The transactional outbox: a run's change and the events it leads to commit together.

The router's answer to an event goes back to the broker as the reply; every
other event waits in the outbox until the relay has posted it and the broker
took it. So no crash between a commit and a post loses an event, and an event
redelivered because its answer was lost gets the same answer at once, not
after the re-drive wait.
"""

from __future__ import annotations

import threading

import pytest

from eventing.contract import Event, EventType, ObjectCreated, StepCompleted, StepOutput
from eventing.errors import DeliveryFailed
from eventing.http import to_http
from functions.catalog import Catalog
from router.engine import Router
from router.outbox import Relay
from router.state import RunStatus
from router.store import Emission, Store
from tests.conftest import wait_until
from tests.router.test_engine import FAN, UPLOAD, by_step, register, request_of


def _completed(request: Event) -> Event:
    """The part's answer to ``request``: its output written."""
    req = request_of(request)
    done = StepCompleted(StepOutput((req.output,), {}), 3.0, req.attempt)
    assert request.context is not None
    return Event(
        EventType.STEP_COMPLETED,
        f"/kpipe/functions/{request.context.function}",
        done.to_data(),
        context=request.context,
        id=f"{request.id}.done",
    )


class Broker:
    """Records what the relay posted; answers as ``answer`` says (None: takes it)."""

    def __init__(self) -> None:
        self.took: list[Event] = []
        self.answer: int | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self.answer is not None:
                raise DeliveryFailed(f"broker answered {self.answer}", status=self.answer)
            self.took.append(event)


def test_a_change_that_fails_emits_nothing(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    [small] = Router(store).on_object_created(UPLOAD)
    assert small.context is not None
    run_id = small.context.run

    def change_that_fails() -> None:
        with store.run_tx(run_id, Emission(events=[small])) as run:
            run.status = RunStatus.FAILED
            raise RuntimeError("the change stopped half-way")

    with pytest.raises(RuntimeError):
        change_that_fails()
    # neither the change nor its event: the outbox holds only what the start emitted
    assert store.get_run(small.context.run).status is RunStatus.PENDING
    assert store.count_outbox()["waiting"] == 1


def test_a_redelivered_event_gets_its_answer_again(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    router = Router(store)
    [small] = router.on_object_created(UPLOAD)
    answered = _completed(small)
    first = router.handle(answered, reply=True)
    assert set(by_step(first)) == {"faces", "png"}
    # The broker never stored that answer (the router died before it got there)
    # and delivers the same event again: the same answer, at once.
    again = router.handle(answered, reply=True)
    assert [e.id for e in again] == [first[0].id]
    assert again[0].data == first[0].data
    # the other request is the relay's, posted once: it is not emitted twice
    assert store.count_outbox()["waiting"] == 2


def test_a_late_duplicate_is_not_answered_again(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    router = Router(store)
    upload = UPLOAD.to_event("/kpipe/adapter")
    [small] = router.handle(upload, reply=True)
    router.handle(_completed(small), reply=True)
    # The request arrived (its step answered): the same notification again, late,
    # starts nothing, and asks the part for no work done already.
    assert router.handle(upload, reply=True) == []


def test_the_relay_posts_each_event_once_and_forgets_it(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    router = Router(store)
    broker = Broker()
    relay = Relay(store, broker)
    [small] = router.on_object_created(UPLOAD)
    fanned = router.handle(_completed(small), reply=True)
    assert relay.drain()
    # the start's request (no reply: nobody asked) and the fan-out's second request
    assert [e.id for e in broker.took] == [small.id, fanned[1].id]
    assert relay.drain()
    assert len(broker.took) == 2
    assert store.count_outbox()["waiting"] == 0


def test_what_the_broker_does_not_take_waits_and_what_it_refuses_is_kept(
    store: Store, catalog: Catalog
) -> None:
    register(store, catalog, FAN)
    broker = Broker()
    relay = Relay(store, broker)
    [small] = Router(store).on_object_created(UPLOAD)
    broker.answer = 503
    assert not relay.drain()
    assert store.count_outbox()["waiting"] == 1
    broker.answer = None
    assert relay.drain()
    assert [e.id for e in broker.took] == [small.id]
    # An event the broker will never take is marked with why, and holds nothing up.
    Router(store).on_object_created(ObjectCreated("uploads", "b.jpg", 1, "e2"))
    broker.answer = 400
    assert relay.drain()
    broker.answer = None
    assert relay.drain()
    assert store.count_outbox() == {"waiting": 0, "refused": 1, "replies": 0}
    assert [e.id for e in broker.took] == [small.id]


def test_a_restarted_router_posts_what_it_left_at_once(database_url: str, catalog: Catalog) -> None:
    with Store(database_url) as dead:
        register(dead, catalog, FAN)
        [small] = Router(dead).on_object_created(UPLOAD)  # committed, never posted
    broker = Broker()
    with Store(database_url) as store:
        relay = Relay(store, broker, poll_s=60)  # no polling: only the start posts
        relay.start()
        try:
            wait_until(lambda: len(broker.took) == 1, timeout_s=10)
        finally:
            relay.stop()
    assert broker.took[0].id == small.id


def test_replicas_relaying_at_once_post_each_event_once(
    postgres_url: str, catalog: Catalog
) -> None:
    stores = [Store(postgres_url) for _ in range(3)]
    try:
        register(stores[0], catalog, FAN)
        router = Router(stores[0])
        for i in range(150):
            router.on_object_created(ObjectCreated("uploads", f"{i}.jpg", 1, f"e{i}"))
        broker = Broker()
        relays = [Relay(store, broker) for store in stores]
        threads = [threading.Thread(target=relay.drain) for relay in relays]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        ids = [e.id for e in broker.took]
        assert len(ids) == 150
        assert len(set(ids)) == 150
    finally:
        for store in stores:
            store.close()


def test_old_answers_are_forgotten(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    router = Router(store)
    [small] = router.on_object_created(UPLOAD)
    router.handle(_completed(small), reply=True)
    assert store.prune_replies(older_than=store.clock() - 60) == 0
    assert store.prune_replies(older_than=store.clock() + 1) == 1
    assert store.reply_of(_completed(small).id) is None


def test_the_outbox_keeps_the_event_as_it_travels(store: Store, catalog: Catalog) -> None:
    register(store, catalog, FAN)
    broker = Broker()
    [small] = Router(store).on_object_created(UPLOAD)
    Relay(store, broker).drain()
    assert to_http(broker.took[0]) == to_http(small)
