"""Figure 2: ``hop_latency_ms`` -- routing latency per hop of a 10-step no-op chain.

A no-op step is ``resize`` with ``max_side: 16384`` on an 8x8 PNG (resize
never upscales). The router stamps ``requested_at`` when it requests a step
and learns of its completion in the next step's ``requested_at`` (or the
run's ``finished_at``), so one hop is::

    requested_at[i+1] - requested_at[i] - duration_ms[i]

where ``duration_ms`` is the time the part spent inside ``run_request`` (S3
get, decode, resize, encode, S3 put). What is left is the routing overhead:
router commit and reply, broker ingress, queue and delivery to the part,
HTTP and CloudEvent framing on both sides, the reply back through the broker
to the router.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench._stack import timestamp
from bench.context import Context
from bench.figures._runs import chain, drive, finished, unique_keys
from bench.model import Figure, Goal, percentile

NOOP = ("resize", {"max_side": 16384})
CHAIN = [NOOP] * 10


def hops_of(run: dict[str, Any]) -> list[float]:
    """The routing overhead (ms) of each hop of one finished run."""
    steps = run["steps"]
    marks = [timestamp(s["requested_at"]) for s in steps] + [finished(run)]
    hops = []
    for i, step in enumerate(steps):
        start, end = marks[i], marks[i + 1]
        if start is None or end is None:
            raise ValueError(f"run {run['id']}: step {step['id']} has no requested_at")
        hops.append((end - start) * 1000.0 - float(step["duration_ms"] or 0.0))
    return hops


def measure(ctx: Context) -> Figure:
    """Run the chain one run at a time and collect every hop."""
    runs = 5 if ctx.quick else 40
    version = ctx.stack.apply(chain("bench-hops", "bench-hops/", ".png", CHAIN))
    drive(
        ctx.stack,
        "bench-hops",
        version,
        unique_keys("bench-hops/w", [("t", ctx.tiny)], ".png"),
        "image/png",
        1,
    )
    items = unique_keys("bench-hops/", [(f"t{i}", ctx.tiny) for i in range(runs)], ".png")
    _, done = drive(ctx.stack, "bench-hops", version, items, "image/png", 1)
    hops = [h for run in done for h in hops_of(run)]
    inside = [float(s["duration_ms"] or 0.0) for run in done for s in run["steps"]]
    p50, p99 = percentile(hops, 50), percentile(hops, 99)
    return Figure(
        key="hop_latency_ms",
        value={"p50": p50, "p99": p99},
        goals=[
            Goal("hop_latency_ms.p50", "<=", 2.0, "ms"),
            Goal("hop_latency_ms.p99", "<=", 10.0, "ms"),
        ],
        method=(
            f"{runs} runs, one at a time, of a 10-step chain of no-op steps (resize max_side "
            "16384 on an 8x8 PNG); hop = requested_at[i+1] (or the run's finished_at) - "
            "requested_at[i] - duration_ms[i] (the part's own time in run_request), so it is "
            "the broker + router + HTTP/CloudEvent framing time of one step. "
            f"{len(hops)} hops."
        ),
        details={
            "runs": runs,
            "hops": len(hops),
            "mean_ms": statistics.fmean(hops),
            "max_ms": max(hops),
            "part_ms_p50": percentile(inside, 50),
        },
        obstacles=[
            f"each hop crosses 4 HTTP requests (router reply -> broker ingress, broker -> part, "
            f"part reply -> broker, broker -> router) through 3 Python processes; p50 "
            f"{p50:.1f} ms per hop against {percentile(inside, 50):.1f} ms inside the no-op part"
        ],
    )
