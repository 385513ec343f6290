"""Backfill: run a pipeline over every object already under a bucket/prefix.

A backfill lists the objects, then starts their runs no faster than
``concurrency`` unfinished runs at a time, exactly as if each object had
just been uploaded (so a run that already exists for an object version is
not started twice). Progress is kept in memory by the replica that runs it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eventing.contract import Event, ObjectCreated
from router import keys
from router.engine import Router
from router.spec import PipelineSpec
from router.state import RunStatus
from router.store import Store

log = logging.getLogger(__name__)


@dataclass
class Backfill:
    """Progress of one backfill."""

    id: str
    pipeline: str
    version: int
    bucket: str
    prefix: str
    concurrency: int
    total: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    status: str = "running"  # running | done | failed
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    run_ids: list[str] = field(default_factory=list)


class Backfills:
    """Starts backfills on background threads and keeps their progress."""

    def __init__(
        self,
        store: Store,
        router: Router,
        send: Callable[[Event], None],
        poll_s: float = 0.2,
    ) -> None:
        self._store = store
        self._router = router
        self._send = send
        self._poll_s = poll_s
        self._jobs: dict[str, Backfill] = {}
        self._lock = threading.Lock()

    def get(self, backfill_id: str) -> Backfill | None:
        with self._lock:
            return self._jobs.get(backfill_id)

    def start(
        self,
        spec: PipelineSpec,
        version: int,
        objects: Iterable[ObjectCreated],
        bucket: str,
        prefix: str,
        concurrency: int,
    ) -> Backfill:
        """Start running ``spec`` over ``objects`` in the background."""
        wanted = [
            o for o in objects if spec.trigger.suffix == "" or o.key.endswith(spec.trigger.suffix)
        ]
        job = Backfill(uuid.uuid4().hex[:16], spec.name, version, bucket, prefix, concurrency)
        job.total = len(wanted)
        with self._lock:
            self._jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(job, spec, wanted), name=f"backfill-{job.id}", daemon=True
        )
        thread.start()
        return job

    def _count(self, job: Backfill) -> int:
        """Update the finished counts; return how many of the job's runs are unfinished."""
        succeeded = failed = 0
        for run_id in job.run_ids:
            status = self._store.get_run(run_id).status
            succeeded += status is RunStatus.SUCCEEDED
            failed += status is RunStatus.FAILED
        job.succeeded, job.failed = succeeded, failed
        return len(job.run_ids) - succeeded - failed

    def _run(self, job: Backfill, spec: PipelineSpec, objects: list[ObjectCreated]) -> None:
        try:
            for obj in objects:
                while self._count(job) >= job.concurrency:
                    time.sleep(self._poll_s)
                for event in self._router.start_run(spec, job.version, obj):
                    self._send(event)
                job.run_ids.append(
                    keys.run_id(spec.name, job.version, obj.bucket, obj.key, obj.etag)
                )
                job.started += 1
            while self._count(job):
                time.sleep(self._poll_s)
            job.status = "done"
        except Exception as exc:  # a backfill thread must report, not vanish
            log.exception("backfill %s failed", job.id)
            job.status = "failed"
            job.error = str(exc)
