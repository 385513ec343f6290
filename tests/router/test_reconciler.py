"""Uploads whose notification was lost still get their run, against a real S3 server.

The S3 server here has no webhook, so every upload's notification is lost,
as it is when the broker drops ``object.created``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.contract import Event, EventType, ObjectCreated, ObjectRef, StepRequest
from eventing.http import from_http
from eventing.objectstore import MinioStore
from eventing.sink import Backoff, HttpBrokerClient
from functions.catalog import Catalog
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3.server import S3Server
from router.engine import Router
from router.reconciler import Reconciler
from router.store import RunQuery, Store
from tests.conftest import wait_until
from tests.eventing.conftest import Subscriber
from tests.router.apps import make_client
from tests.router.test_engine import register

GRACE_S = 30.0


@pytest.fixture
def objects(s3: S3Server) -> Iterator[MinioStore]:
    with MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint)) as store:
        yield store


def spec(prefix: str) -> dict[str, Any]:
    return {
        "name": "thumbs",
        "trigger": {"bucket": "uploads", "prefix": prefix, "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
    }


def upload(objects: MinioStore, key: str) -> ObjectCreated:
    etag = objects.put(ObjectRef("uploads", key), b"jpeg bytes", "image/jpeg")
    return ObjectCreated("uploads", key, 10, etag, "image/jpeg")


def started_keys(events: list[Event]) -> list[str]:
    return sorted(
        StepRequest.from_data(e.data).inputs[0].key
        for e in events
        if e.type is EventType.STEP_REQUESTED
    )


@pytest.fixture
def reconcile(store: Store, objects: MinioStore) -> Callable[..., list[Event]]:
    """One reconciliation ``after_s`` seconds from now, with a one-minute lookback by default."""

    def run(after_s: float = GRACE_S + 1, lookback_s: float = 60.0) -> list[Event]:
        reconciler = Reconciler(
            store,
            Router(store),
            objects,
            lambda: None,
            interval_s=60,
            grace_s=GRACE_S,
            lookback_s=lookback_s,
        )
        return reconciler.reconcile_once(now=time.time() + after_s)

    return run


def test_uploads_whose_notification_was_lost_get_their_run_once(
    store: Store,
    catalog: Catalog,
    objects: MinioStore,
    prefix: str,
    reconcile: Callable[..., list[Event]],
) -> None:
    register(store, catalog, spec(prefix))
    for name in ("a.jpg", "sub dir/b.jpg", "notes.txt"):
        upload(objects, prefix + name)

    events = reconcile()
    assert started_keys(events) == [prefix + "a.jpg", prefix + "sub dir/b.jpg"]
    runs, _ = store.list_runs(RunQuery(pipeline="thumbs"))
    assert sorted(r.source.key for r in runs) == [prefix + "a.jpg", prefix + "sub dir/b.jpg"]
    assert reconcile() == []  # their runs exist now


def test_what_the_reconciler_leaves_alone(
    store: Store,
    catalog: Catalog,
    objects: MinioStore,
    prefix: str,
    reconcile: Callable[..., list[Event]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = upload(objects, prefix + "before-the-pipeline.jpg")
    time.sleep(1.1)  # S3 lists last-modified times in whole seconds
    register(store, catalog, spec(prefix))
    router = Router(store)
    # an upload whose notification came: it has its run
    assert router.on_object_created(upload(objects, prefix + "notified.jpg"))
    # one that is still within the grace time of its notification
    upload(objects, prefix + "young.jpg")

    assert reconcile(after_s=GRACE_S / 2) == []
    with caplog.at_level(logging.WARNING, logger="router.reconciler"):
        assert started_keys(reconcile()) == [prefix + "young.jpg"]
    # only the object it started, with why (not the one whose run exists)
    assert [r.getMessage() for r in caplog.records if r.name == "router.reconciler"] == [
        f"uploads/{prefix}young.jpg had no run of thumbs: its notification was lost; starting it"
    ]
    # older than the lookback: that is a backfill's job
    upload(objects, prefix + "old.jpg")
    assert reconcile(after_s=GRACE_S + 120, lookback_s=60) == []
    assert before.key not in started_keys(reconcile(after_s=GRACE_S + 2, lookback_s=3600))


def test_the_router_reconciles_on_its_own(
    tmp_path: Path,
    catalog: Catalog,
    s3: S3Server,
    prefix: str,
    subscriber: Callable[..., Subscriber],
) -> None:
    sink = subscriber((202, b"", {}))
    objects = MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint))
    with make_client(
        tmp_path,
        catalog,
        sink=HttpBrokerClient(sink.url, timeout_s=5, retries=1, backoff=Backoff(0.01)),
        objects=objects,
        KPIPE_SWEEP_INTERVAL_S=0.05,
        KPIPE_RECONCILE_INTERVAL_S=0.1,
        KPIPE_RECONCILE_GRACE_S=0,
    ) as client:
        assert client.put("/v1/pipelines/thumbs", json=spec(prefix)).status_code == 200
        upload(objects, prefix + "lost.jpg")
        wait_until(lambda: sink.count >= 1)
        [event] = [from_http(r.headers, r.body) for r in sink.received]
        assert started_keys([event]) == [prefix + "lost.jpg"]
        [run] = client.get("/v1/runs", params={"pipeline": "thumbs"}).json()["runs"]
        assert run["source"] == {"bucket": "uploads", "key": prefix + "lost.jpg"}
        metrics = client.get("/metrics").text
        assert 'kpipe_runs_reconciled_total{pipeline="thumbs"} 1.0' in metrics
