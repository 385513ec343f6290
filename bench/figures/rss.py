"""Figure 6: ``peak_rss_mb`` -- peak resident memory of each part and of the whole stack.

Sampled from /proc by :class:`bench._procs.RssSampler` while the benchmark
works the stack: the routed figures, then a workout that makes every part of
the catalogue do real work on 1080p photos, several at once
(:mod:`bench.figures._every_part`). A fused pipeline runs every step of
its group in the process of the group's first part (``resize`` in
overhead_ratio's fused way), so that part's figure holds the others' work. A part's figure
is its whole process tree (one uvicorn process today): the sum of
their VmHWM (each process's lifetime peak, so a peak between two samples
counts too). The stack's figure is the largest sum of VmRSS over every
process under ``kpipe up`` seen at one sample.
"""

from __future__ import annotations

from typing import Any

from bench._procs import MIB, RssSampler
from bench.model import Figure, Goal
from kpipe.local.config import PARTS

PART_GOAL_MB = 150.0
STACK_GOAL_MB = 2048.0


def figure(sampler: RssSampler, workout: dict[str, Any] | None, sampled: list[str]) -> Figure:
    """The figure from a finished sampler.

    Args:
        sampler: the sampler, stopped.
        workout: what :func:`bench.figures._every_part.work_every_part` reported
            (None when it did not run).
        sampled: the other figures measured inside the sampled window.
    """
    rows = list(sampler.by_component())
    value: dict[str, float | None] = {name: total for name, total, _, _ in rows}
    value["stack"] = sampler.stack_peak_kib / MIB
    heavy = [
        f"{n} {t:.0f} MB in {c} processes (largest {m:.0f} MB)"
        for n, t, m, c in rows
        if (n in PARTS and t > PART_GOAL_MB) or t > 500
    ]
    requests = (workout or {}).get("requests", {})
    idle = [p for p in PARTS if not requests.get(p)]
    notes = []
    if workout is None:
        notes.append("the workout did not run: parts that no other figure uses were idle")
    elif idle:
        notes.append(f"took no request during the workout, so measured idle: {', '.join(idle)}")
    trouble = ""
    if workout and workout.get("unfinished"):
        trouble += (
            f" Workout: runs of {len(workout['unfinished'])} photos were not done in their "
            "time and went on beside what came next."
        )
    if workout and workout.get("errors"):
        trouble += (
            f" Workout: {workout['failed_runs']} of {workout['runs']} runs failed, and the "
            "steps after a failed one did not run: " + "; ".join(workout["errors"]) + "."
        )
    if workout and workout.get("direct_statuses"):
        notes.append(
            "asked directly during the workout (answered statuses): "
            + "; ".join(
                f"{p} {sorted(set(s))} x{len(s)}" for p, s in workout["direct_statuses"].items()
            )
        )
    return Figure(
        key="peak_rss_mb",
        value=value,
        goals=[Goal(f"peak_rss_mb.{p}", "<=", PART_GOAL_MB, "MB") for p in PARTS if p in value]
        + [Goal("peak_rss_mb.stack", "<=", STACK_GOAL_MB, "MB")],
        method=(
            f"/proc sampled every {sampler.interval_s} s ({sampler.samples} samples) while "
            + (", ".join(sampled) if sampled else "no other figure")
            + " ran"
            + (
                f", then while a workout made every part work ({workout['photos']} 1080p "
                f"photos, one at a time, each starting a run of {len(workout['pipelines'])} "
                "pipelines at once that together use every part a pipeline can finish; "
                "detect_objects asked directly at the same time)"
                if workout
                else ""
            )
            + ". "
            + (
                "Requests each part took during the workout: "
                + ", ".join(f"{p} {requests.get(p, 0)}" for p in PARTS)
                + ". "
                if workout
                else ""
            )
            + trouble.lstrip()
            + (" " if trouble else "")
            + "A fused pipeline runs all its steps in its first part's process (resize, in "
            "overhead_ratio's fused way). A part = its whole process tree (its uvicorn "
            "process): the sum of "
            "their VmHWM (lifetime peaks); stack = the largest sampled sum of VmRSS over every "
            "process under kpipe up (Triton and its stubs, rclone included). RSS counts shared "
            "libraries and copy-on-write pages in every process that maps them."
        ),
        details={
            "components": {
                n: {"sum_of_peaks_mb": t, "largest_process_mb": m, "processes": c}
                for n, t, m, c in rows
            },
            "sum_of_all_peaks_mb": sum(t for _, t, _, _ in rows),
            "workout": workout,
        },
        obstacles=heavy + notes,
    )
