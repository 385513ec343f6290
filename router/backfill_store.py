"""Backfills in the router's database, so every replica sees them and any can finish them.

A backfill is a row with its settings and a lease, plus one item per object
to run. An item gets its run id once its run has been started; progress is
counted from the items and the runs they started. The replica that works on
a backfill holds its lease and renews it; when a replica dies, its lease
runs out and another replica takes the backfill over where it stopped.

Example:
    >>> from router.store import Store
    >>> backfills = BackfillStore(Store("sqlite://"))
    >>> backfills.get("nope")
    Traceback (most recent call last):
    ...
    router.errors.BackfillNotFound: backfill 'nope' does not exist
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from eventing.contract import ObjectCreated
from router.errors import BackfillNotFound
from router.schema import backfill_items, backfills, runs
from router.state import RunStatus
from router.store import Store


class BackfillStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BackfillKind(StrEnum):
    """What a backfill does with each object: start its run, or retry its failed run."""

    START = "start"
    REDRIVE = "redrive"


@dataclass(frozen=True)
class Backfill:
    """A backfill and its progress, as any replica reads it."""

    id: str
    pipeline: str
    version: int
    bucket: str
    prefix: str
    concurrency: int
    status: BackfillStatus
    error: str | None
    created_at: float
    total: int
    started: int
    succeeded: int
    failed: int
    kind: BackfillKind = BackfillKind.START

    @property
    def unfinished(self) -> int:
        """Runs started and not yet finished."""
        return self.started - self.succeeded - self.failed


class BackfillStore:
    """Backfills, their items and their leases, in the tables beside the runs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        backfill_id: str,
        *,
        pipeline: str,
        version: int,
        bucket: str,
        prefix: str,
        concurrency: int,
        objects: Sequence[ObjectCreated],
        owner: str,
        lease_until: float,
        kind: BackfillKind = BackfillKind.START,
    ) -> Backfill:
        """Store a new backfill over ``objects``, leased to ``owner``; return it."""
        with self._store.transaction() as conn:
            conn.execute(
                backfills.insert().values(
                    id=backfill_id,
                    pipeline=pipeline,
                    version=version,
                    bucket=bucket,
                    prefix=prefix,
                    concurrency=concurrency,
                    status=BackfillStatus.RUNNING.value,
                    created_at=time.time(),
                    owner=owner,
                    lease_until=lease_until,
                    kind=kind.value,
                )
            )
            if objects:
                conn.execute(
                    backfill_items.insert(),
                    [
                        {"backfill_id": backfill_id, "seq": seq, "object": obj.to_data()}
                        for seq, obj in enumerate(objects)
                    ],
                )
        return self.get(backfill_id)

    def get(self, backfill_id: str) -> Backfill:
        with self._store.engine.connect() as conn:
            row = (
                conn.execute(sa.select(backfills).where(backfills.c.id == backfill_id))
                .mappings()
                .first()
            )
            if row is None:
                raise BackfillNotFound(backfill_id)
            total, started = conn.execute(
                sa.select(sa.func.count(), sa.func.count(backfill_items.c.run_id)).where(
                    backfill_items.c.backfill_id == backfill_id
                )
            ).one()
            finished: dict[str, int] = {
                status: count
                for status, count in conn.execute(
                    sa.select(runs.c.status, sa.func.count())
                    .select_from(backfill_items.join(runs, runs.c.id == backfill_items.c.run_id))
                    .where(
                        backfill_items.c.backfill_id == backfill_id,
                        runs.c.status.in_([RunStatus.SUCCEEDED.value, RunStatus.FAILED.value]),
                    )
                    .group_by(runs.c.status)
                )
            }
        return Backfill(
            id=row["id"],
            pipeline=row["pipeline"],
            version=row["version"],
            bucket=row["bucket"],
            prefix=row["prefix"],
            concurrency=row["concurrency"],
            status=BackfillStatus(row["status"]),
            error=row["error"],
            created_at=row["created_at"],
            total=int(total),
            started=int(started),
            succeeded=int(finished.get(RunStatus.SUCCEEDED.value, 0)),
            failed=int(finished.get(RunStatus.FAILED.value, 0)),
            kind=BackfillKind(row["kind"]),
        )

    def pending(self, backfill_id: str, limit: int) -> list[tuple[int, ObjectCreated]]:
        """Up to ``limit`` objects whose runs are not started yet, in listing order."""
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(backfill_items.c.seq, backfill_items.c.object)
                .where(
                    backfill_items.c.backfill_id == backfill_id, backfill_items.c.run_id.is_(None)
                )
                .order_by(backfill_items.c.seq)
                .limit(limit)
            ).all()
        return [(seq, ObjectCreated.from_data(data)) for seq, data in rows]

    def mark_started(self, backfill_id: str, seq: int, run_id: str) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                backfill_items.update()
                .where(backfill_items.c.backfill_id == backfill_id, backfill_items.c.seq == seq)
                .values(run_id=run_id)
            )

    def renew(self, backfill_id: str, owner: str, lease_until: float) -> bool:
        """Extend ``owner``'s lease; False if the backfill is no longer its to run."""
        with self._store.transaction() as conn:
            updated = conn.execute(
                backfills.update()
                .where(
                    backfills.c.id == backfill_id,
                    backfills.c.owner == owner,
                    backfills.c.status == BackfillStatus.RUNNING.value,
                )
                .values(lease_until=lease_until)
            )
        return updated.rowcount == 1

    def claim_expired(self, owner: str, now: float, lease_until: float) -> list[str]:
        """Take over every running backfill whose lease ran out; return their ids.

        Each claim is one conditional UPDATE, so when two replicas try at
        once exactly one of them gets each backfill.
        """
        with self._store.engine.connect() as conn:
            expired = conn.execute(
                sa.select(backfills.c.id).where(
                    backfills.c.status == BackfillStatus.RUNNING.value,
                    backfills.c.lease_until < now,
                )
            ).scalars()
            candidates = list(expired)
        claimed = []
        for backfill_id in candidates:
            with self._store.transaction() as conn:
                updated = conn.execute(
                    backfills.update()
                    .where(
                        backfills.c.id == backfill_id,
                        backfills.c.status == BackfillStatus.RUNNING.value,
                        backfills.c.lease_until < now,
                    )
                    .values(owner=owner, lease_until=lease_until)
                )
            if updated.rowcount == 1:
                claimed.append(backfill_id)
        return claimed

    def release(self, owner: str) -> None:
        """End ``owner``'s leases now, so the next sweep of any replica takes them over."""
        with self._store.transaction() as conn:
            conn.execute(
                backfills.update()
                .where(
                    backfills.c.owner == owner,
                    backfills.c.status == BackfillStatus.RUNNING.value,
                )
                .values(lease_until=0.0)
            )

    def finish(
        self, backfill_id: str, owner: str, status: BackfillStatus, error: str | None = None
    ) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                backfills.update()
                .where(backfills.c.id == backfill_id, backfills.c.owner == owner)
                .values(status=status.value, error=error)
            )
