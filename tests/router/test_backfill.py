"""Backfills kept in the database: concurrency, progress from any replica, takeover.

Every test runs against the embedded SQLite file and a real PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventing.contract import Event, EventType, ObjectCreated
from functions.catalog import Catalog
from router.backfill import Backfills
from router.backfill_store import Backfill, BackfillStatus, BackfillStore
from router.engine import Router
from router.errors import BackfillNotFound
from router.outbox import Relay
from router.store import Store
from router.sweeper import Sweeper
from tests.conftest import wait_until as wait_for
from tests.router.test_engine import complete, register

SPEC = {
    "name": "thumbs",
    "trigger": {"bucket": "uploads", "prefix": "old/"},
    "output": {"bucket": "processed"},
    "steps": [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
}
OBJECTS = [ObjectCreated("uploads", f"old/{i}.jpg", 10, f"etag-{i}") for i in range(5)]


class Sent:
    """What a replica sent to the broker, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def requests(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.type is EventType.STEP_REQUESTED]


def orphan(
    store: Store, backfill_id: str, objects: list[ObjectCreated], concurrency: int = 1
) -> BackfillStore:
    """Record a running backfill whose replica died: its lease ran out a second ago."""
    backfills = BackfillStore(store)
    backfills.create(
        backfill_id,
        pipeline="thumbs",
        version=store.get_pipeline("thumbs").version,
        bucket="uploads",
        prefix="old/",
        concurrency=concurrency,
        objects=objects,
        owner="dead-replica",
        lease_until=time.time() - 1,
    )
    return backfills


def answer(router: Router, sent: Sent, count: int) -> None:
    """Complete the first ``count`` step requests, each as soon as it is sent."""
    for n in range(count):
        wait_for(lambda n=n: len(sent.requests()) > n)
        complete(router, sent.requests()[n])


@pytest.fixture
def replicas(database_url: str, catalog: Catalog) -> Iterator[Callable[..., Backfills]]:
    """Start router replicas that share the test's database."""
    started: list[tuple[Store, Backfills]] = []

    def start(send: Callable[[Event], None], **options: Any) -> Backfills:
        store = Store(database_url)
        backfills = Backfills(
            store, Router(store), Relay(store, send).drain, poll_s=0.01, **options
        )
        started.append((store, backfills))
        return backfills

    first = Store(database_url)
    register(first, catalog, SPEC)
    first.close()
    yield start
    for store, backfills in reversed(started):
        backfills.stop()
        store.close()


def start(backfills: Backfills, store: Store, concurrency: int) -> Backfill:
    stored = store.get_pipeline("thumbs")
    return backfills.start(stored.spec, stored.version, OBJECTS, "uploads", "old/", concurrency)


def test_a_backfill_keeps_its_concurrency_and_ends_when_every_run_has(
    replicas: Callable[..., Backfills], store: Store
) -> None:
    sent = Sent()
    replica = replicas(sent)
    backfill = start(replica, store, concurrency=2)
    assert (backfill.total, backfill.status) == (5, BackfillStatus.RUNNING)

    wait_for(lambda: len(sent.requests()) == 2)
    time.sleep(0.2)
    assert len(sent.requests()) == 2  # the third waits for a slot
    answer(Router(store), sent, 5)
    wait_for(lambda: replica.get(backfill.id).status is BackfillStatus.DONE)
    progress = replica.get(backfill.id)
    assert (progress.started, progress.succeeded, progress.failed) == (5, 5, 0)
    assert sorted(e.subject for e in sent.requests()) == sorted(str(o.ref) for o in OBJECTS)


def test_any_replica_reports_a_backfill(replicas: Callable[..., Backfills], store: Store) -> None:
    sent = Sent()
    backfill = start(replicas(sent), store, concurrency=3)
    wait_for(lambda: len(sent.requests()) == 3)
    other = replicas(Sent())
    progress = other.get(backfill.id)
    assert (progress.pipeline, progress.total, progress.started) == ("thumbs", 5, 3)
    assert progress.status is BackfillStatus.RUNNING
    with pytest.raises(BackfillNotFound):
        other.get("no-such-backfill")


def test_a_live_replica_keeps_its_backfill(
    replicas: Callable[..., Backfills], store: Store
) -> None:
    sent = Sent()
    backfill = start(replicas(sent, lease_s=0.3), store, concurrency=1)
    wait_for(lambda: len(sent.requests()) == 1)
    time.sleep(0.6)  # two leases long: renewed all along
    other_sent = Sent()
    assert replicas(other_sent).adopt() == []
    assert replicas(other_sent).get(backfill.id).status is BackfillStatus.RUNNING
    assert other_sent.events == []


def test_a_dead_replicas_backfill_is_taken_over_where_it_stopped(
    replicas: Callable[..., Backfills], store: Store
) -> None:
    # A replica recorded a backfill, started the first run and died.
    stored = store.get_pipeline("thumbs")
    dead = Router(store)
    [first_request] = dead.start_run(stored.spec, stored.version, OBJECTS[0])
    Relay(store, lambda _event: None).drain()  # it was sent before the replica died
    backfills = orphan(store, "orphan", OBJECTS, concurrency=2)
    assert first_request.context is not None
    backfills.mark_started("orphan", 0, first_request.context.run)

    sent = Sent()
    heir = replicas(sent)
    assert heir.adopt() == ["orphan"]
    # one slot is the dead replica's unfinished run; the heir fills the other
    wait_for(lambda: len(sent.requests()) == 1)
    time.sleep(0.2)
    assert [e.subject for e in sent.requests()] == [str(OBJECTS[1].ref)]
    complete(dead, first_request)
    answer(dead, sent, 4)
    wait_for(lambda: heir.get("orphan").status is BackfillStatus.DONE)
    assert [e.subject for e in sent.requests()] == [str(o.ref) for o in OBJECTS[1:]]
    assert heir.get("orphan").succeeded == 5


def test_a_stopped_replica_hands_its_backfill_over_at_once(
    replicas: Callable[..., Backfills], store: Store
) -> None:
    sent = Sent()
    leaving = replicas(sent)
    backfill = start(leaving, store, concurrency=1)
    wait_for(lambda: len(sent.requests()) == 1)
    leaving.stop()
    assert replicas(Sent()).adopt() == [backfill.id]


def test_the_sweeper_adopts_orphans(replicas: Callable[..., Backfills], store: Store) -> None:
    sent = Sent()
    leaving = replicas(Sent())
    backfill = start(leaving, store, concurrency=5)
    leaving.stop()  # before or after it started some runs: the heir starts the rest
    heir = replicas(sent)
    sweeper = Sweeper(
        store,
        Router(store),
        Relay(store, sent).drain,
        interval_s=0.05,
        redrive_after_s=60,
        deadline_s=600,
        backfills=heir,
    )
    sweeper.start()
    try:
        wait_for(lambda: heir.get(backfill.id).started == 5)
    finally:
        sweeper.stop()


def test_two_replicas_never_adopt_the_same_backfill(
    database_url: str, replicas: Callable[..., Backfills]
) -> None:
    with Store(database_url) as store:
        for n in range(20):
            orphan(store, f"orphan-{n}", [])
    heirs = [replicas(Sent()) for _ in range(2)]
    claimed: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def adopt(n: int) -> None:
        barrier.wait()
        claimed[n] = heirs[n].adopt()

    threads = [threading.Thread(target=adopt, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(f"orphan-{n}" for n in range(20))
