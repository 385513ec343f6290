"""Figure 2: ``hop_latency_ms`` -- routing latency per hop of a 10-step no-op chain.

A no-op step is ``resize`` with ``max_side: 16384`` on an 8x8 PNG (resize
never upscales). The router stamps ``requested_at`` when it requests a step
and learns of its completion in the next step's ``requested_at`` (or the
run's ``finished_at``), so one hop is::

    requested_at[i+1] - requested_at[i] - duration_ms[i]

where ``duration_ms`` is the time the part spent inside ``run_request`` (S3
get, decode, resize, encode, S3 put). What is left is the routing overhead:
the router's commit and reply, the broker's queue and delivery to the part,
HTTP and CloudEvent framing on both sides, the reply back through the broker
to the router.

Where those milliseconds go, measured beside the hops:

- the part logs ``step done`` right after ``run_request`` returns, which
  splits each hop into the request leg (router to part) and the reply leg
  (part to router);
- the same request POSTed straight to the part, without the broker, gives
  the part's own HTTP and CloudEvent share (round trip less ``run_request``);
- /proc gives each process's CPU and time spent waiting for a CPU
  (schedstat) over the runs, divided by the hops.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import httpx

from bench._procs import Usage, machine_busy_s, usage, usage_by_label, usage_delta
from bench._stack import timestamp
from bench.context import Context
from bench.figures._direct import post, step_request
from bench.figures._runs import chain, drive, finished, unique_keys
from bench.model import Figure, Goal, Table, percentile
from bench.timing import Hop, done_times, hops
from eventing.contract import ObjectRef

NOOP = ("resize", {"max_side": 16384})
CHAIN = [NOOP] * 10
P50_GOAL, P99_GOAL = 2.0, 6.0


def hops_of(run: dict[str, Any], done: dict[tuple[str, str], float]) -> list[Hop]:
    """The hops of one finished run, split by the part's ``step done`` times in ``done``."""
    steps = run["steps"]
    marks = [timestamp(s["requested_at"]) for s in steps] + [finished(run)]
    if any(m is None for m in marks):
        raise ValueError(f"run {run['id']}: a step has no requested_at")
    return hops(
        [m for m in marks if m is not None],
        [float(s["duration_ms"] or 0.0) for s in steps],
        [done.get((run["id"], s["id"])) for s in steps],
    )


def direct_framing(ctx: Context, count: int) -> list[float]:
    """The part's HTTP and CloudEvent share of a request, without the broker (ms each).

    The no-op step POSTed straight to the resize part, one at a time: round
    trip less the ``duration_ms`` the part reports for ``run_request``.
    """
    source = ObjectRef("uploads", f"bench-direct/{os.getpid()}/tiny.png")
    ctx.stack.upload(ctx.stack.backend_minio(), source.key, ctx.tiny, "image/png")
    url, key = ctx.stack.part_url("resize"), ctx.stack.router_key()
    framing = []
    with httpx.Client(timeout=30) as client:
        for i in range(count + 2):
            name = f"hops/{os.getpid()}/{i}.png"
            request = step_request(key, NOOP[0], source, name, NOOP[1], f"direct-{i}")
            answer = post(client, url, request)
            if answer.duration_ms is None:
                raise RuntimeError(f"resize answered {answer.status} {answer.event_type}")
            if i >= 2:  # the first two warm the connection and the thread up
                framing.append(answer.round_trip_ms - answer.duration_ms)
    return framing


def _row(name: str, values: list[float], how: str) -> tuple[str, ...]:
    if not values:
        return (name, "n/a", "n/a", how)
    return (name, f"{percentile(values, 50):.2f}", f"{statistics.fmean(values):.2f}", how)


def breakdown(found: list[Hop], inside: list[float], framing: list[float]) -> Table:
    """Where a hop's milliseconds go, by wall-clock time (p50 and mean over the hops)."""
    split = [h for h in found if h.request is not None and h.reply is not None]
    request = [h.request for h in split if h.request is not None]
    reply = [h.reply for h in split if h.reply is not None]
    total = [h.total for h in found]
    rest = []
    if framing and total:
        rest = [statistics.fmean(total) - statistics.fmean(framing)]
    return Table(
        title=f"Where a hop's milliseconds go, by the clock ({len(split)} of {len(found)} hops "
        "split by the part's log line; means add up, p50s need not):",
        columns=("part of a hop", "p50 ms", "mean ms", "measured from"),
        rows=(
            _row(
                "request leg: router's request to the part starting run_request",
                request,
                "run view requested_at; part's `step done` log time less duration_ms",
            ),
            _row(
                "reply leg: the part's run_request done to the router handling the reply",
                reply,
                "part's `step done` log time; the next step's requested_at",
            ),
            _row("hop (both legs)", total, "requested_at[i+1] - requested_at[i] - duration_ms[i]"),
            _row(
                "of the hop: the part's own HTTP and CloudEvent framing",
                framing,
                "the same request POSTed to the part without the broker: round trip less "
                "duration_ms",
            ),
            (
                "of the hop: the router and its broker, and the hand-offs between processes",
                "",
                f"{rest[0]:.2f}" if rest else "n/a",
                "mean hop less mean part framing",
            ),
            _row(
                "not in the hop: the part's run_request (S3 get, decode, encode, S3 put)",
                inside,
                "duration_ms in the part's reply",
            ),
        ),
    )


def cpu_table(used: dict[str, Usage], count: int, machine_s: float) -> Table:
    """CPU and CPU waits per hop, by process, over the measured runs."""
    rows = [
        (name, f"{u.cpu_s * 1000 / count:.2f}", f"{u.wait_s * 1000 / count:.2f}")
        for name, u in used.items()
        if u.cpu_s * 1000 / count >= 0.01 or u.wait_s * 1000 / count >= 0.01
    ]
    rows.append(("the whole machine (every user)", f"{machine_s * 1000 / count:.2f}", ""))
    return Table(
        title=f"CPU per hop by process ({count} hops; each run's upload, notification and "
        "run bookkeeping are spread over its 10 hops; the router's process hosts the broker; "
        "a part is its uvicorn process, run_request included; the bench client "
        "watches for each run's output at rclone and then reads the run from the router once; "
        "waiting = runnable but not running, from schedstat):",
        columns=("process", "CPU ms per hop", "waiting for a CPU, ms per hop"),
        rows=tuple(rows),
    )


def measure(ctx: Context) -> Figure:
    """Run the chain one run at a time, collect every hop, and split them."""
    runs = 5 if ctx.quick else 40
    version = ctx.stack.apply(chain("bench-hops", "bench-hops/", ".png", CHAIN))
    warm = unique_keys("bench-hops/w", [("t", ctx.tiny)], ".png")
    drive(ctx.stack, "bench-hops", version, warm, "image/png", 1, watch=True)
    items = unique_keys("bench-hops/", [(f"t{i}", ctx.tiny) for i in range(runs)], ".png")
    before, own, machine = usage_by_label(ctx.stack.pid), usage(os.getpid()), machine_busy_s()
    done = drive(ctx.stack, "bench-hops", version, items, "image/png", 1, watch=True).runs
    used = usage_delta(before, usage_by_label(ctx.stack.pid))
    used["bench client (waits for the runs)"] = usage(os.getpid()) - own
    machine = machine_busy_s() - machine
    logged = done_times(ctx.stack.log_lines("resize"))
    found = [h for run in done for h in hops_of(run, logged)]
    all_hops = [h.total for h in found]
    inside = [float(s["duration_ms"] or 0.0) for run in done for s in run["steps"]]
    framing = direct_framing(ctx, 10 if ctx.quick else 50)
    p50, p99 = percentile(all_hops, 50), percentile(all_hops, 99)
    split = breakdown(found, inside, framing)
    cpu = cpu_table(used, len(found), machine)
    router_cpu = used.get("router", Usage()).cpu_s * 1000 / len(found)
    return Figure(
        key="hop_latency_ms",
        value={"p50": p50, "p99": p99},
        goals=[
            Goal("hop_latency_ms.p50", "<=", P50_GOAL, "ms"),
            Goal("hop_latency_ms.p99", "<=", P99_GOAL, "ms"),
        ],
        method=(
            f"{runs} runs, one at a time, of a 10-step chain of no-op steps (resize max_side "
            "16384 on an 8x8 PNG); hop = requested_at[i+1] (or the run's finished_at) - "
            "requested_at[i] - duration_ms[i] (the part's own time in run_request), so it is "
            "the broker + router + HTTP/CloudEvent framing time of one step. "
            f"{len(all_hops)} hops. The tables split them: by the clock, with the part's "
            "`step done` log line (ms resolution, +0.5 ms for the cut) and the same request "
            "POSTed straight to the part; by CPU, from /proc over the runs."
        ),
        details={
            "runs": runs,
            "hops": len(all_hops),
            "mean_ms": statistics.fmean(all_hops),
            "max_ms": max(all_hops),
            "part_ms_p50": percentile(inside, 50),
            "direct_part_framing_ms_p50": percentile(framing, 50),
            "cpu_ms_per_hop": {k: u.cpu_s * 1000 / len(found) for k, u in used.items()},
            "cpu_wait_ms_per_hop": {k: u.wait_s * 1000 / len(found) for k, u in used.items()},
            "machine_cpu_ms_per_hop": machine * 1000 / len(found),
        },
        obstacles=[
            f"p50 {p50:.1f} ms per hop. Per hop the stack makes one HTTP exchange with the "
            "part (the broker's POST, answered by the part's reply event), two commits to the "
            "broker's SQLite queue (the part's reply, then the router's next request) and the "
            "router's run transaction in its own database; of the hop, about "
            f"{percentile(framing, 50):.1f} ms (p50) is the part's own HTTP and CloudEvent "
            f"framing, and the router's process (router and broker) spent {router_cpu:.1f} CPU "
            "ms per hop; the tables say where the rest goes",
        ],
        tables=[split, cpu],
    )
