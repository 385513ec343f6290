"""The reconciler: finds uploads whose notification never reached the router.

Knative's default broker is not durable, and a MinIO webhook without a
``queue_dir`` is sent once; either can lose the ``object.created`` of an
upload, and then nothing else would ever start its run. So, every
``interval_s``, the reconciler lists each registered pipeline's trigger and
starts the run of every object that has none: one uploaded after the
pipeline's active version was stored, at least ``grace_s`` ago (time for
its notification to arrive), and at most ``lookback_s`` ago (older ones are
what a backfill is for). Run ids are deterministic, so a notification that
arrives after all still starts no second run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from eventing.contract import Event
from eventing.objectstore import MinioStore, ObjectStoreError
from router.engine import Router
from router.store import Store, StoredPipeline

log = logging.getLogger(__name__)

# How far a run's creation may precede its object's last-modified time as the
# object store reports it (clocks of two machines).
CLOCK_SKEW_S = 300.0
# S3 listings give last-modified times in whole seconds.
LISTED_TIME_RESOLUTION_S = 1.0


class Reconciler:
    """Starts the runs of objects whose ``object.created`` was lost.

    ``on_started`` is called with the pipeline's name for each run it starts
    (the router counts them in ``kpipe_runs_reconciled_total``).
    """

    def __init__(
        self,
        store: Store,
        router: Router,
        objects: MinioStore,
        flush: Callable[[], object],
        interval_s: float,
        grace_s: float,
        lookback_s: float,
        on_started: Callable[[str], object] | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._objects = objects
        self._flush = flush
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._lookback_s = lookback_s
        self._on_started = on_started
        self._next_at = 0.0

    def reconcile_if_due(self, now: float | None = None) -> list[Event]:
        """Reconcile when ``interval_s`` has passed since the last time (never when it is 0)."""
        now = time.time() if now is None else now
        if self._interval_s <= 0 or now < self._next_at:
            return []
        self._next_at = now + self._interval_s
        return self.reconcile_once(now)

    def reconcile_once(self, now: float | None = None) -> list[Event]:
        """Start the run of every object that should have one and has none; return the events."""
        now = time.time() if now is None else now
        emitted: list[Event] = []
        for stored in self._store.list_pipelines():
            try:
                emitted += self._reconcile(stored, now)
            except ObjectStoreError as exc:  # one unreadable bucket must not stop the others
                log.warning("cannot reconcile %s: %s", stored.name, exc)
        if emitted:
            self._flush()  # the router put them in the outbox: post them now
        return emitted

    def _reconcile(self, stored: StoredPipeline, now: float) -> list[Event]:
        spec = stored.spec
        since = max(stored.created_at, now - self._lookback_s)
        before = now - self._grace_s
        if since >= before:
            return []
        have_runs = self._store.run_sources(
            spec.name, spec.trigger.bucket, created_since=since - CLOCK_SKEW_S
        )
        events: list[Event] = []
        listed = self._objects.list(
            spec.trigger.bucket, spec.trigger.prefix, since - LISTED_TIME_RESOLUTION_S, before
        )
        for obj in listed:
            if not spec.trigger.matches(obj.bucket, obj.key) or (obj.key, obj.etag) in have_runs:
                continue
            log.warning(
                "%s had no run of %s: its notification was lost; starting it", obj.ref, spec.name
            )
            events += self._router.start_run(spec, stored.version, obj)
            if self._on_started is not None:
                self._on_started(spec.name)
        return events
