"""Rollouts: a pipeline's candidate version tried on real uploads before it takes over.

A rollout names a stored version of a pipeline and a mode:

- ``shadow``: every upload the pipeline takes also starts a run of the
  candidate, whose final outputs go under ``<pipeline>/_shadow/v<n>/`` and so
  never replace the live ones (router/keys.py);
- ``canary``: the uploads whose key falls below ``percent`` (a stable hash of
  the key, :func:`router.keys.canary_share`) run the candidate *instead of*
  the active version; the others run the active one.

A pipeline has at most one active rollout. Ending it promotes the candidate
(it becomes the active version) or rolls it back; either way the rollout is
kept, with its outcome and the reason. Runs carry their role (``live``,
``shadow``, ``canary``), so the two versions' runs of one photo can be read
side by side.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from router.errors import Conflict, RolloutNotFound
from router.schema import rollouts, runs
from router.store import Store


class RolloutMode(StrEnum):
    SHADOW = "shadow"
    CANARY = "canary"


class RolloutStatus(StrEnum):
    ACTIVE = "active"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Rollout:
    id: str
    pipeline: str
    version: int
    mode: RolloutMode
    percent: int
    status: RolloutStatus
    reason: str | None
    created_at: float
    ended_at: float | None

    def takes_instead(self, share: int) -> bool:
        """Whether a canary runs the candidate for an upload of this share (0-99)."""
        return self.mode is RolloutMode.CANARY and share < self.percent


def _rollout(row: sa.RowMapping) -> Rollout:
    return Rollout(
        id=row["id"],
        pipeline=row["pipeline"],
        version=row["version"],
        mode=RolloutMode(row["mode"]),
        percent=row["percent"],
        status=RolloutStatus(row["status"]),
        reason=row["reason"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
    )


class Rollouts:
    """The rollouts, in the router's database beside the runs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def start(self, pipeline: str, version: int, mode: RolloutMode, percent: int) -> Rollout:
        """Start a rollout of a stored ``version``; Conflict if one is active already.

        Raises:
            PipelineNotFound: no such pipeline or version.
            Conflict: the pipeline has an active rollout, or ``version`` is its active one.
        """
        active = self._store.get_pipeline(pipeline)
        self._store.get_pipeline(pipeline, version)
        if version == active.version:
            raise Conflict(f"version {version} of {pipeline} is the active one already")
        with self._store.transaction() as conn:
            running = conn.execute(
                sa.select(rollouts.c.id).where(
                    rollouts.c.pipeline == pipeline,
                    rollouts.c.status == RolloutStatus.ACTIVE.value,
                )
            ).first()
            if running is not None:
                raise Conflict(f"{pipeline} has an active rollout ({running.id}); end it first")
            rollout_id = uuid.uuid4().hex[:16]
            conn.execute(
                rollouts.insert().values(
                    id=rollout_id,
                    pipeline=pipeline,
                    version=version,
                    mode=mode.value,
                    percent=percent,
                    status=RolloutStatus.ACTIVE.value,
                    created_at=time.time(),
                )
            )
        return self.current(pipeline)

    def active(self) -> dict[str, Rollout]:
        """Every active rollout, by pipeline (one query: the router reads it per upload)."""
        query = sa.select(rollouts).where(rollouts.c.status == RolloutStatus.ACTIVE.value)
        with self._store.engine.connect() as conn:
            return {r["pipeline"]: _rollout(r) for r in conn.execute(query).mappings()}

    def current(self, pipeline: str) -> Rollout:
        """The pipeline's latest rollout, active or ended; RolloutNotFound if it has none."""
        query = (
            sa.select(rollouts)
            .where(rollouts.c.pipeline == pipeline)
            .order_by(rollouts.c.created_at.desc())
            .limit(1)
        )
        with self._store.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise RolloutNotFound(pipeline)
        return _rollout(row)

    def end(self, pipeline: str, outcome: RolloutStatus, reason: str) -> Rollout:
        """End the active rollout: promote its candidate (make it active) or roll it back."""
        rollout = self.current(pipeline)
        if rollout.status is not RolloutStatus.ACTIVE:
            raise Conflict(f"{pipeline}'s rollout {rollout.id} ended already")
        if outcome is RolloutStatus.PROMOTED:
            self._store.set_active(pipeline, rollout.version, pinned=False)
        with self._store.transaction() as conn:
            conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout.id)
                .values(status=outcome.value, reason=reason[:2000], ended_at=time.time())
            )
        return self.current(pipeline)

    def summary(self, rollout: Rollout) -> dict[str, dict[str, int]]:
        """Runs of the pipeline since the rollout began, by role, by status."""
        query = (
            sa.select(runs.c.role, runs.c.status, sa.func.count())
            .where(runs.c.pipeline == rollout.pipeline, runs.c.created_at >= rollout.created_at)
            .group_by(runs.c.role, runs.c.status)
        )
        found: dict[str, dict[str, int]] = {}
        with self._store.engine.connect() as conn:
            for role, status, count in conn.execute(query):
                found.setdefault(str(role), {})[str(status)] = int(count)
        return found
