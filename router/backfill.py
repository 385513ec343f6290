"""Backfill: run a pipeline over every object already under a bucket/prefix.

A backfill lists the objects, then starts their runs no faster than
``concurrency`` unfinished runs at a time, exactly as if each object had
just been uploaded (so a run that already exists for an object version is
not started twice). The backfill and its progress live in the router's
database (:mod:`router.backfill_store`): any replica answers for it, and
when the replica running it dies another one takes it over at the sweep
after its lease runs out.

A redrive is the same job over failed runs: each of its objects is the
source of a failed run of one pipeline version, which it retries from its
failed steps (as ``POST /v1/runs/{id}/retry`` does), at the same bounded
concurrency, with the same progress and the same take-over.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from eventing.contract import ObjectCreated
from router import keys
from router.backfill_store import Backfill, BackfillKind, BackfillStatus, BackfillStore
from router.engine import Router
from router.errors import Conflict, RunNotFound
from router.spec import PipelineSpec
from router.store import Store

log = logging.getLogger(__name__)

# How long a replica keeps a backfill without renewing it; a dead replica's
# backfills are taken over this long after it last renewed.
LEASE_S = 30.0


class Backfills:
    """Starts backfills, works on them on background threads, adopts orphans."""

    def __init__(
        self,
        store: Store,
        router: Router,
        flush: Callable[[], object],
        poll_s: float = 0.2,
        lease_s: float = LEASE_S,
    ) -> None:
        self._store = store
        self._backfills = BackfillStore(store)
        self._router = router
        self._flush = flush
        self._poll_s = poll_s
        self._lease_s = lease_s
        # Who holds a lease: this replica, for as long as the process lives.
        self._owner = f"router-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def get(self, backfill_id: str) -> Backfill:
        return self._backfills.get(backfill_id)

    def start(
        self,
        spec: PipelineSpec,
        version: int,
        objects: Iterable[ObjectCreated],
        bucket: str,
        prefix: str,
        concurrency: int,
    ) -> Backfill:
        """Record a backfill of ``spec`` over ``objects`` and start it in the background."""
        wanted = [
            o for o in objects if spec.trigger.suffix == "" or o.key.endswith(spec.trigger.suffix)
        ]
        backfill = self._backfills.create(
            uuid.uuid4().hex[:16],
            pipeline=spec.name,
            version=version,
            bucket=bucket,
            prefix=prefix,
            concurrency=concurrency,
            objects=wanted,
            owner=self._owner,
            lease_until=time.time() + self._lease_s,
        )
        self._work_on(backfill.id)
        return backfill

    def redrive(
        self, pipeline: str, version: int, sources: Iterable[ObjectCreated], concurrency: int
    ) -> Backfill:
        """Record a redrive of the failed runs of ``pipeline`` version ``version`` and start it.

        ``sources`` are the runs' source objects (bucket, key, etag): with
        the pipeline and version they name each run (router/keys.py).
        """
        redrive = self._backfills.create(
            uuid.uuid4().hex[:16],
            pipeline=pipeline,
            version=version,
            bucket="",
            prefix="",
            concurrency=concurrency,
            objects=list(sources),
            owner=self._owner,
            lease_until=time.time() + self._lease_s,
            kind=BackfillKind.REDRIVE,
        )
        self._work_on(redrive.id)
        return redrive

    def adopt(self, now: float | None = None) -> list[str]:
        """Take over the backfills whose replica stopped renewing its lease."""
        now = time.time() if now is None else now
        adopted = self._backfills.claim_expired(self._owner, now, now + self._lease_s)
        for backfill_id in adopted:
            log.info("backfill %s taken over after its lease ran out", backfill_id)
            self._work_on(backfill_id)
        return adopted

    def stop(self) -> None:
        """Stop working and give up the leases: the next sweep of any replica adopts them."""
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.join(timeout=5)
        try:
            self._backfills.release(self._owner)
        except Exception:  # shutting down: the leases then simply run out
            log.exception("could not give up this replica's backfill leases")

    def _work_on(self, backfill_id: str) -> None:
        with self._lock:
            self._workers = {i: w for i, w in self._workers.items() if w.is_alive()}
            if backfill_id in self._workers:
                return
            self._stop.clear()
            worker = threading.Thread(
                target=self._run, args=(backfill_id,), name=f"backfill-{backfill_id}", daemon=True
            )
            self._workers[backfill_id] = worker
        worker.start()

    def _retry(self, run_id: str) -> bool:
        """Retry a failed run; False if it is no longer failed (retried since, by hand)."""
        try:
            return bool(self._router.retry_run(run_id))
        except (Conflict, RunNotFound) as exc:
            log.info("redrive: %s", exc)
            return False

    def _run(self, backfill_id: str) -> None:
        try:
            self._drive(backfill_id)
        except Exception as exc:  # a backfill thread must report, not vanish
            log.exception("backfill %s failed", backfill_id)
            self._backfills.finish(backfill_id, self._owner, BackfillStatus.FAILED, str(exc))

    def _drive(self, backfill_id: str) -> None:
        """Start runs as slots free up until every object has a finished run."""
        backfill = self._backfills.get(backfill_id)
        spec = self._store.get_pipeline(backfill.pipeline, backfill.version).spec
        renew_at = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= renew_at:
                if not self._backfills.renew(backfill_id, self._owner, now + self._lease_s):
                    log.info("backfill %s is no longer this replica's", backfill_id)
                    return
                renew_at = now + self._lease_s / 3
            progress = self._backfills.get(backfill_id)
            free = backfill.concurrency - progress.unfinished
            if progress.started == progress.total and free == backfill.concurrency:
                self._backfills.finish(backfill_id, self._owner, BackfillStatus.DONE)
                return
            for seq, obj in self._backfills.pending(backfill_id, max(free, 0)):
                run_id = keys.run_id(spec.name, backfill.version, obj.bucket, obj.key, obj.etag)
                if backfill.kind is BackfillKind.REDRIVE:
                    emitted = self._retry(run_id)
                else:
                    emitted = bool(self._router.start_run(spec, backfill.version, obj))
                if emitted:
                    self._flush()  # the router put its events in the outbox: post them now
                self._backfills.mark_started(backfill_id, seq, run_id)
            self._stop.wait(self._poll_s)
