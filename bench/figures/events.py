"""Figure 3: ``events_per_s`` -- sustained routing throughput with no-op steps.

Many runs of the 10-step no-op chain at once; the events are every
CloudEvent the broker ingested meanwhile (its ``GET /status`` ``received``
counter): per run one ``object.created`` for the upload, 10 ``step.requested``,
10 ``step.completed``, one ``run.completed``, plus the ``object.created`` the
S3 server sends for each intermediate output (the router drops those, but the
broker routes them).
"""

from __future__ import annotations

import os

from bench._procs import cpu_by_component, cpu_delta, cpu_s, machine_busy_s
from bench.context import Context
from bench.figures._runs import chain, drive, throughput, unique_keys
from bench.figures.hops import CHAIN
from bench.model import Figure, Goal

UPLOADERS = 4
PIPELINE_EVENTS_PER_RUN = 1 + 10 + 10 + 1


def measure(ctx: Context) -> Figure:
    """Upload every tiny image at once, wait for every run, divide events by time."""
    runs = 10 if ctx.quick else 60
    version = ctx.stack.apply(chain("bench-events", "bench-events/", ".png", CHAIN))
    items = unique_keys("bench-events/", [(f"t{i}", ctx.tiny) for i in range(runs)], ".png")
    before = ctx.stack.broker_counters()
    cpu_before, own_before = cpu_by_component(ctx.stack.pid), cpu_s(os.getpid())
    machine_before = machine_busy_s()
    started, done = drive(
        ctx.stack, "bench-events", version, items, "image/png", UPLOADERS, closed=False
    )
    after = ctx.stack.broker_counters()
    cpu = cpu_delta(cpu_before, cpu_by_component(ctx.stack.pid))
    cpu["bench client"] = cpu_s(os.getpid()) - own_before
    machine = machine_busy_s() - machine_before
    runs_per_s = throughput(started, done)
    wall = len(done) / runs_per_s
    received = after["received"] - before["received"]
    per_s = received / wall
    failed = sum(r["status"] != "succeeded" for r in done)
    return Figure(
        key="events_per_s",
        value=per_s,
        goals=[Goal("events_per_s", ">=", 500.0)],
        method=(
            f"{runs} runs of the 10-step no-op chain, uploaded by {UPLOADERS} threads as fast "
            "as they go; events = the broker's received counter over the run; time = first "
            "upload to the last run's finished_at."
        ),
        details={
            "runs": runs,
            "failed_runs": failed,
            "wall_s": wall,
            "broker_received": received,
            "broker_delivered": after["delivered"] - before["delivered"],
            "pipeline_events_per_s": PIPELINE_EVENTS_PER_RUN * len(done) / wall,
            "steps_per_s": 10 * len(done) / wall,
            "cpu_s": cpu,
            "machine_cpu_s": machine,
        },
        obstacles=[cpu_story(cpu, wall, received, machine)],
    )


def cpu_story(cpu: dict[str, float], wall_s: float, events: int, machine_s: float) -> str:
    """Where the CPU went, per event, largest first (measured from /proc)."""
    busy = sum(cpu.values())
    top = ", ".join(f"{k} {v * 1000 / events:.2f}" for k, v in list(cpu.items())[:6] if v > 0)
    return (
        f"{busy:.1f} CPU-s in {wall_s:.1f} s wall: the stack and client kept {busy / wall_s:.2f} "
        f"of {os.cpu_count()} cores busy, the whole machine (other users included) "
        f"{machine_s / wall_s:.2f}; CPU ms per event by process: {top}"
    )
