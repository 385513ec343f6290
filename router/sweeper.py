"""The sweeper: finds runs that stopped making progress and re-drives or fails them.

It also judges the active rollouts by their rules (router/rollouts.py).

Knative's default broker keeps events in memory, so an event can be lost.
A run whose step request got no answer for ``redrive_after_s`` has its
requests sent again (parts write deterministic keys, so a repeat is safe);
a run with no progress for ``deadline_s`` is failed, never left running.
Each sweep also takes over the backfills of replicas that stopped renewing
their leases, and, when it is due, lets the reconciler start the runs of
uploads whose notification was lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from eventing.contract import Event
from router.backfill import Backfills
from router.engine import Router
from router.reconciler import Reconciler
from router.store import Store

log = logging.getLogger(__name__)


class Sweeper:
    """A background thread that periodically re-drives or fails stuck runs."""

    def __init__(
        self,
        store: Store,
        router: Router,
        flush: Callable[[], object],
        interval_s: float,
        redrive_after_s: float,
        deadline_s: float,
        backfills: Backfills | None = None,
        reconciler: Reconciler | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._flush = flush
        self._interval_s = interval_s
        self._redrive_after_s = redrive_after_s
        self._deadline_s = deadline_s
        self._backfills = backfills
        self._reconciler = reconciler
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping in the background (again, after a stop)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kpipe-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def sweep_once(self, now: float | None = None) -> list[Event]:
        """Re-drive or fail every stuck run; return the events it emitted."""
        now = self._store.clock() if now is None else now
        emitted: list[Event] = []
        for run_id in self._store.unfinished_runs(older_than=now - self._redrive_after_s):
            run = self._store.get_run(run_id)
            if run.updated_at < now - self._deadline_s:
                events = self._router.fail_run(
                    run_id,
                    {
                        "code": "deadline_exceeded",
                        "message": f"run {run_id} made no progress for {self._deadline_s:.0f} s",
                    },
                )
            else:
                events = self._router.redrive(run_id)
            emitted += events
        for rollout in self._router.rollouts.judge_all():
            log.info(
                "rollout of %s ended: %s (%s)", rollout.pipeline, rollout.status, rollout.reason
            )
        self.prune(now)
        if emitted:
            self._flush()  # they are in the outbox: post them now
        return emitted

    def prune(self, now: float) -> None:
        """Forget answers old enough that the broker no longer redelivers their causes."""
        self._store.prune_replies(older_than=now - self._redrive_after_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                emitted = self.sweep_once()
                if emitted:
                    log.info("sweeper re-sent %d event(s)", len(emitted))
                if self._backfills is not None:
                    self._backfills.adopt()
                if self._reconciler is not None:
                    self._reconciler.reconcile_if_due()
            except Exception:  # the sweeper must outlive a bad sweep; the next one retries
                log.exception("sweep failed")
