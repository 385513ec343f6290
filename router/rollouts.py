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
side by side (:meth:`Rollouts.compare`).

Its rules (:class:`RolloutRules`, judged at every sweep, as an Argo Rollouts
analysis is) end it on their own: it is rolled back as soon as the
candidate's failure rate, or its p95 duration, is worse than the live
version's by more than a threshold, or (shadow) a metric of its metadata
is lower than the live run's on the same photo (``found.count``: it found
fewer faces); it is promoted once ``promote_after`` candidate runs finished
with no check failed.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from router.errors import Conflict, RolloutNotFound
from router.schema import rollouts, runs
from router.state import RunState, RunStatus
from router.store import RunQuery, Store

# How many runs of each side a judgement reads at most.
JUDGED_RUNS = 5000
# Two detections are the same thing when their boxes overlap this much (IoU).
SAME_BOX_IOU = 0.5


class RolloutMode(StrEnum):
    SHADOW = "shadow"
    CANARY = "canary"


class RolloutStatus(StrEnum):
    ACTIVE = "active"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class RolloutRules:
    """What ends a rollout on its own; ``promote_after`` 0 never promotes by itself.

    ``metric`` is ``<step id>.<metadata key>`` of a number (``found.count``);
    with a shadow, a photo where the candidate's value is lower than the live
    run's fails the check.
    """

    promote_after: int = 0
    max_failure_rate_increase: float | None = None
    max_p95_ratio: float | None = None
    metric: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RolloutRules:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Verdict:
    """A judgement of a rollout: how many candidate runs it compared, and what it found."""

    compared: int = 0
    failed_check: str | None = None
    promote: bool = False
    figures: dict[str, float | None] = field(default_factory=dict)


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
    rules: RolloutRules = RolloutRules()

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
        rules=RolloutRules.from_data(row["rules"] or {}),
    )


class Rollouts:
    """The rollouts, in the router's database beside the runs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def start(
        self,
        pipeline: str,
        version: int,
        mode: RolloutMode,
        percent: int,
        rules: RolloutRules | None = None,
    ) -> Rollout:
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
                    rules=(rules or RolloutRules()).to_data(),
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

    # -- judging and comparing ----------------------------------------------

    def _sides(self, rollout: Rollout) -> tuple[list[RunState], list[RunState]]:
        """The live runs and the candidate's since the rollout began."""
        query = RunQuery(pipeline=rollout.pipeline, since=rollout.created_at, limit=JUDGED_RUNS)
        live, _ = self._store.list_runs(
            RunQuery(**{**query.__dict__, "role": "live", "version": None})
        )
        candidate, _ = self._store.list_runs(
            RunQuery(**{**query.__dict__, "role": rollout.mode.value, "version": rollout.version})
        )
        return live, candidate

    def judge(self, rollout: Rollout) -> Verdict:
        """Check the candidate against the live version by the rollout's rules."""
        rules = rollout.rules
        live, candidate = self._sides(rollout)
        verdict = Verdict(compared=sum(1 for r in candidate if _finished(r)))
        # With no live run to compare (a canary of 100 %), failures are held against none.
        live_rate, rate = _failure_rate(live) or 0.0, _failure_rate(candidate)
        live_p95, p95 = _p95(live), _p95(candidate)
        verdict.figures = {
            "live_failure_rate": live_rate,
            "candidate_failure_rate": rate,
            "live_p95_ms": live_p95,
            "candidate_p95_ms": p95,
        }
        limit, ratio = rules.max_failure_rate_increase, rules.max_p95_ratio
        worse_rate = limit is not None and _above(rate, live_rate, limit)
        if worse_rate:
            verdict.failed_check = (
                f"the candidate failed {rate:.0%} of its runs, the live version {live_rate:.0%}"
            )
        slower = (
            ratio is not None
            and p95 is not None
            and live_p95 is not None
            and p95 > ratio * live_p95
        )
        if verdict.failed_check is None and slower:
            verdict.failed_check = (
                f"the candidate's p95 duration {p95:.0f} ms is over {ratio:g} times "
                f"the live version's {live_p95:.0f} ms"
            )
        if verdict.failed_check is None and rules.metric and rollout.mode is RolloutMode.SHADOW:
            for pair in _pairs(live, candidate):
                ours, theirs = _metric(pair[1], rules.metric), _metric(pair[0], rules.metric)
                if ours is not None and theirs is not None and ours < theirs:
                    verdict.failed_check = (
                        f"{rules.metric} is {ours:g} for the candidate and {theirs:g} for the "
                        f"live version on {pair[0].source}"
                    )
                    break
        verdict.promote = (
            verdict.failed_check is None
            and rules.promote_after > 0
            and verdict.compared >= rules.promote_after
        )
        return verdict

    def judge_all(self) -> list[Rollout]:
        """Judge every active rollout with rules; end those the rules end. The ones ended."""
        ended = []
        for rollout in self.active().values():
            if not rollout.rules.to_data():
                continue
            verdict = self.judge(rollout)
            if verdict.failed_check is not None:
                ended.append(
                    self.end(rollout.pipeline, RolloutStatus.ROLLED_BACK, verdict.failed_check)
                )
            elif verdict.promote:
                why = f"{verdict.compared} candidate runs finished and no check failed"
                ended.append(self.end(rollout.pipeline, RolloutStatus.PROMOTED, why))
        return ended

    def compare(self, rollout: Rollout, limit: int = 50) -> list[dict[str, Any]]:
        """Photo by photo, what the live version and the shadow made of it.

        For each step id of both: the detections one found and the other did
        not (boxes that overlap by less than :data:`SAME_BOX_IOU`).
        """
        live, candidate = self._sides(rollout)
        compared = []
        for ours, theirs in list(_pairs(live, candidate))[:limit]:
            differences = {}
            for step_id in sorted(set(ours.steps) & set(theirs.steps)):
                mine = _boxes(ours.steps[step_id].metadata)
                other = _boxes(theirs.steps[step_id].metadata)
                only_live = [b for b in mine if not any(_iou(b, c) >= SAME_BOX_IOU for c in other)]
                only_cand = [b for b in other if not any(_iou(b, c) >= SAME_BOX_IOU for c in mine)]
                if only_live or only_cand:
                    differences[step_id] = {"only_live": only_live, "only_candidate": only_cand}
            compared.append(
                {
                    "source": ours.source.to_data(),
                    "live": _side(ours),
                    "candidate": _side(theirs),
                    "differences": differences,
                }
            )
        return compared


def _above(value: float | None, base: float | None, by: float | None) -> bool:
    """Whether ``value`` is more than ``by`` above ``base`` (False when any is unknown)."""
    return value is not None and base is not None and by is not None and value - base > by


def _finished(run: RunState) -> bool:
    return run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)


def _failure_rate(side: list[RunState]) -> float | None:
    finished = [r for r in side if _finished(r)]
    if not finished:
        return None
    return sum(1 for r in finished if r.status is RunStatus.FAILED) / len(finished)


def _duration_ms(run: RunState) -> float | None:
    return (run.finished_at - run.created_at) * 1000 if run.finished_at is not None else None


def _p95(side: list[RunState]) -> float | None:
    durations = sorted(
        d for r in side if r.status is RunStatus.SUCCEEDED and (d := _duration_ms(r)) is not None
    )
    if not durations:
        return None
    return durations[min(len(durations) - 1, math.ceil(0.95 * len(durations)) - 1)]


def _pairs(live: list[RunState], candidate: list[RunState]) -> Iterable[tuple[RunState, RunState]]:
    """(live run, candidate run) of the same object version, both finished."""
    by_source = {(r.source, r.etag): r for r in live if _finished(r)}
    for run in candidate:
        other = by_source.get((run.source, run.etag))
        if other is not None and _finished(run):
            yield other, run


def _metric(run: RunState, name: str) -> float | None:
    step_id, _, key = name.partition(".")
    step = run.steps.get(step_id)
    value = step.metadata.get(key) if step is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _boxes(metadata: dict[str, Any]) -> list[list[float]]:
    found = metadata.get("detections")
    if not isinstance(found, list):
        return []
    return [
        list(d["box"])
        for d in found
        if isinstance(d, dict) and isinstance(d.get("box"), list) and len(d["box"]) == 4
    ]


def _iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def _side(run: RunState) -> dict[str, Any]:
    return {
        "run": run.id,
        "version": run.version,
        "status": run.status.value,
        "duration_ms": _duration_ms(run),
        "outputs": [o.to_data() for o in run.outputs],
        "error": run.error,
    }
