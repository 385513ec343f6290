"""Figures ``chain_step_ms`` and ``chain_steps_per_s``: a 10-step chain, kpipe beside Celery.

Every step does real work: get an 8x8 PNG from S3, decode it, encode it as
PNG, put it back. In kpipe that is the no-op ``resize`` (``max_side``
16384; resize never upscales) routed step by step through ``kpipe up``; in
the peer (:mod:`bench.peer`) it is a Celery 5 task, chained with
``celery.chain``, run by a prefork worker with one child per CPU, with the
machine's Redis as broker and result backend. Both read and write the same
S3 server: the stack's rclone endpoint, where kpipe's parts read and write.

Driven the same way, side by side in one run, in alternating rounds:

- **one chain at a time**: per chain, (end - start) / 10, where start is the
  client's clock just before the upload (kpipe) or ``apply_async`` (Celery),
  and end is when the system recorded the last step: the router's
  ``finished_at`` of the run, Celery's ``date_done`` of the last task's
  result. Both include getting the chain going (kpipe: upload, S3
  notification, adapter, the router's run; Celery: sending the chain to Redis);
- **throughput**: 4 client threads submit 100 chains in all, back to back
  without waiting (an open loop), then wait; steps/s = 10 x chains / (first
  submission to the last chain's end).

``ratio`` is kpipe / Celery. Without Redis the peer is not measured.

The floor is the same ten steps called one after another in this process
(the same minio client calls and the same Pillow work, no routing at all):
``kpipe_routing`` is kpipe's per-step time above it, what routing costs.
"""

from __future__ import annotations

import io
import os
import statistics
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench._procs import Usage, usage, usage_by_label, usage_delta
from bench._stack import timestamp
from bench.context import Context
from bench.figures._celery import (
    Worker,
    celery_worker,
    redis_pid,
    redis_problem,
    run_chain,
    run_open,
    wait_ready,
)
from bench.figures._runs import Driven, chain, drive, finished, unique_keys
from bench.figures.hops import CHAIN
from bench.model import Figure, Goal, percentile
from bench.peer import PeerSettings, step
from bench.timing import per_step_ms, steps_per_s

STEPS = len(CHAIN)
CLIENTS = 4
TOP = 6  # processes named per CPU story
PIPELINE = "bench-chain"
STEP_MS_GOAL = 6.0
STEPS_PER_S_GOAL = 300.0
# What the issue's own figures imply: 6 ms against Celery's 9.3 ms, 300/s against 176/s.
ISSUE_PEER = {"step_ms": 9.3, "steps_per_s": 176.0}


@dataclass
class _Side:
    """What one system did: per-step ms of chains run alone, throughput rounds, CPU."""

    step_ms: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu: dict[str, Usage] = field(default_factory=dict)
    steps_in_rates: int = 0
    failed: int = 0
    extra: dict[str, list[float]] = field(default_factory=dict)

    def p50(self) -> float | None:
        return percentile(self.step_ms, 50) if self.step_ms else None

    def rate(self) -> float | None:
        return statistics.fmean(self.rates) if self.rates else None

    def add_cpu(self, delta: dict[str, Usage]) -> None:
        for name, used in delta.items():
            self.cpu[name] = self.cpu.get(name, Usage()) + used

    def cpu_ms_per_step(self) -> dict[str, float]:
        steps = max(1, self.steps_in_rates)
        return {
            k: round(v.cpu_s * 1000 / steps, 3)
            for k, v in sorted(self.cpu.items(), key=lambda kv: -kv[1].cpu_s)
            if v.cpu_s > 0
        }

    def wait_ms_per_step(self) -> dict[str, float]:
        steps = max(1, self.steps_in_rates)
        return {k: round(v.wait_s * 1000 / steps, 3) for k, v in self.cpu.items() if v.wait_s > 0}


class _Kpipe:
    """kpipe's side: the chain registered as a pipeline on the running stack."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.version = ctx.stack.apply(chain(PIPELINE, f"{PIPELINE}/", ".png", CHAIN))

    def _drive(self, tag: str, count: int, clients: int, closed: bool) -> Driven:
        items = unique_keys(
            f"{PIPELINE}/{tag}", [(f"c{i}", self.ctx.tiny) for i in range(count)], ".png"
        )
        stack = self.ctx.stack
        return drive(stack, PIPELINE, self.version, items, "image/png", clients, closed, watch=True)

    def warm_up(self) -> None:
        self._drive("w", 1, 1, True)
        self._drive("w", CLIENTS, CLIENTS, False)

    def alone(self, side: _Side, count: int) -> None:
        driven = self._drive("a", count, 1, True)
        side.failed += len(driven.failed())
        for run in driven.runs:
            if run["status"] != "succeeded":
                continue
            uploaded, ended = driven.uploaded_at[run["id"]], finished(run)
            first = _requested(run)
            side.step_ms.append(per_step_ms(uploaded, ended, STEPS))
            side.extra.setdefault("router_step_ms", []).append(per_step_ms(first, ended, STEPS))
            side.extra.setdefault("entry_ms", []).append((first - uploaded) * 1000.0)

    def throughput(self, side: _Side, count: int) -> None:
        stack = self.ctx.stack
        before, own = usage_by_label(stack.pid), usage(os.getpid())
        driven = self._drive("t", count, CLIENTS, False)
        delta = usage_delta(before, usage_by_label(stack.pid))
        delta["bench client"] = usage(os.getpid()) - own
        side.add_cpu(delta)
        side.failed += len(driven.failed())
        done = [
            c
            for c, r in zip(driven.chains(), driven.runs, strict=True)
            if r["status"] == "succeeded"
        ]
        side.rates.append(steps_per_s(done, STEPS))
        side.steps_in_rates += STEPS * len(done)


class _Peer:
    """Celery's side: a worker started here, chains over the same S3 server."""

    def __init__(self, ctx: Context, worker: Worker, source_key: str, stamp: str) -> None:
        self.ctx = ctx
        self.worker = worker
        self.source_key = source_key
        self.stamp = stamp
        self.redis = redis_pid(worker.settings.redis_url)
        self._count = 0

    def _prefixes(self, count: int) -> list[str]:
        first, self._count = self._count, self._count + count
        return [f"bench-peer/{self.stamp}/c{i}" for i in range(first, first + count)]

    def warm_up(self) -> None:
        run_open(self.worker.settings, self.source_key, self._prefixes(CLIENTS), STEPS, CLIENTS)

    def alone(self, side: _Side, count: int) -> None:
        app = self.worker.client()
        try:
            for prefix in self._prefixes(count):
                start, end = run_chain(app, self.source_key, prefix, STEPS)
                side.step_ms.append(per_step_ms(start, end, STEPS))
        finally:
            app.close()

    def _usage(self) -> dict[str, Usage]:
        found = {
            "celery worker": self.worker.usage(),
            "bench client": usage(os.getpid()),
            "s3/rclone": usage_by_label(self.ctx.stack.pid).get("s3/rclone", Usage()),
        }
        if self.redis is not None:
            found["redis"] = usage(self.redis)
        return found

    def throughput(self, side: _Side, count: int) -> None:
        before = self._usage()
        done = run_open(
            self.worker.settings, self.source_key, self._prefixes(count), STEPS, CLIENTS
        )
        side.add_cpu(usage_delta(before, self._usage()))
        side.rates.append(steps_per_s(done, STEPS))
        side.steps_in_rates += STEPS * len(done)


class _Floor:
    """No routing: the chain's ten steps called in turn, in this process, on the same S3."""

    def __init__(self, settings: PeerSettings, source_key: str, stamp: str) -> None:
        from minio import Minio

        self.settings = settings
        self.source_key = source_key
        self.stamp = stamp
        self.client = Minio(
            settings.s3_endpoint, settings.access_key, settings.secret_key, secure=False
        )
        self._count = 0

    def alone(self, side: _Side, count: int) -> None:
        for _ in range(count):
            self._count += 1
            key, start = self.source_key, time.time()
            for i in range(STEPS):
                out = f"bench-floor/{self.stamp}/c{self._count}/s{i}.png"
                key = step(self.client, self.settings.bucket, key, out)
            side.step_ms.append(per_step_ms(start, time.time(), STEPS))


def _requested(run: dict[str, Any]) -> float:
    """When the router requested the run's first step."""
    value = timestamp(run["steps"][0]["requested_at"])
    if value is None:
        raise ValueError(f"run {run['id']}: its first step was never requested")
    return value


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def measure(ctx: Context) -> list[Figure]:
    """Both sides, alternating: chains alone, then 4 clients; the two figures."""
    rounds, alone, open_chains = (2, 3, 20) if ctx.quick else (3, 10, 100)
    kpipe = _Kpipe(ctx)
    kp, pe = _Side(), _Side()
    stamp = uuid.uuid4().hex[:12]
    settings = PeerSettings(
        redis_url=ctx.peer_redis,
        queue=f"kpipe-bench-peer-{stamp}",
        s3_endpoint=ctx.stack.s3_backend_endpoint,
    )
    problem = redis_problem(settings.redis_url)
    source = f"bench-peer/{stamp}/source.png"
    ctx.stack.backend_minio().put_object(
        settings.bucket, source, io.BytesIO(ctx.tiny), len(ctx.tiny), "image/png"
    )
    floor, fl = _Floor(settings, source, stamp), _Side()
    floor.alone(_Side(), 2)  # warm: the client's pool, Pillow's codecs
    with ExitStack() as stack:
        peer: _Peer | None = None
        if problem is None:
            worker = stack.enter_context(celery_worker(settings, ctx.work, os.cpu_count() or 1))
            wait_ready(worker, source, f"bench-peer/{stamp}/ready", STEPS)
            peer = _Peer(ctx, worker, source, stamp)
            peer.warm_up()
        kpipe.warm_up()
        for _ in range(rounds):
            kpipe.alone(kp, alone)
            floor.alone(fl, alone)
            if peer is not None:
                peer.alone(pe, alone)
        runners: list[tuple[_Kpipe | _Peer, _Side]] = [(kpipe, kp)]
        if peer is not None:
            runners.append((peer, pe))
        # kpipe, Celery, then Celery, kpipe: neither side always runs on the later machine.
        for i in range(1 if ctx.quick else 2):
            for runner, side in runners if i % 2 == 0 else runners[::-1]:
                runner.throughput(side, open_chains)
    return _figures(ctx, kp, pe, fl, problem, rounds * alone, open_chains)


def _figures(
    ctx: Context,
    kp: _Side,
    pe: _Side,
    fl: _Side,
    problem: str | None,
    alone: int,
    open_chains: int,
) -> list[Figure]:
    cores = os.cpu_count()
    step_ms = {"kpipe": kp.p50(), "celery": pe.p50(), "floor": fl.p50()}
    routing = _difference(step_ms["kpipe"], step_ms["floor"])
    rates = {"kpipe": kp.rate(), "celery": pe.rate()}
    peer_note = (
        f"Celery peer not measured: {problem}. A machine without Redis measures kpipe alone."
        if problem
        else f"Celery {_celery_version()} peer: prefork worker with {cores} children, "
        "Redis broker and result backend."
    )
    details_ms: dict[str, Any] = {
        "chains_per_side": alone,
        "kpipe_step_ms": _summary(kp.step_ms),
        "celery_step_ms": _summary(pe.step_ms),
        "floor_step_ms": _summary(fl.step_ms),
        "kpipe_router_step_ms": _summary(kp.extra.get("router_step_ms", [])),
        "kpipe_entry_ms": _summary(kp.extra.get("entry_ms", [])),
        "kpipe_failed_runs": kp.failed,
        "peer": peer_note,
    }
    details_rate: dict[str, Any] = {
        "chains_per_round": open_chains,
        "clients": CLIENTS,
        "kpipe_rounds": kp.rates,
        "celery_rounds": pe.rates,
        "cpu_ms_per_step": {"kpipe": kp.cpu_ms_per_step(), "celery": pe.cpu_ms_per_step()},
        "cpu_wait_ms_per_step": {"kpipe": kp.wait_ms_per_step(), "celery": pe.wait_ms_per_step()},
        "kpipe_failed_runs": kp.failed,
        "peer": peer_note,
    }
    obstacles_ms = [_alone_story(kp)]
    obstacles_rate = [_cpu_story("kpipe", kp), _cpu_story("Celery", pe)]
    if problem:
        obstacles_ms.insert(0, peer_note)
        obstacles_rate.insert(0, peer_note)
    if kp.failed:
        failed = f"{kp.failed} kpipe runs failed and are left out of the figures"
        obstacles_ms.append(failed)
        obstacles_rate.append(failed)
    method_common = (
        f"A 10-step chain, each step a real S3 get, PNG decode, PNG encode and S3 put of an "
        f"8x8 PNG, kpipe (the no-op resize routed through kpipe up) beside Celery (a chain of "
        f"10 tasks doing the same with the minio client and Pillow, run by a prefork worker "
        f"with one child per CPU on the machine's Redis), against the same S3 server (the "
        f"stack's rclone endpoint). {peer_note} ratio = kpipe / Celery. "
    )
    return [
        Figure(
            key="chain_step_ms",
            value={
                **step_ms,
                "ratio": _ratio(step_ms["kpipe"], step_ms["celery"]),
                "kpipe_routing": routing,
            },
            goals=[Goal("chain_step_ms.kpipe", "<=", STEP_MS_GOAL, "ms")],
            method=method_common
            + f"One chain at a time, {alone} chains per side in alternating rounds: per chain "
            "(end - start) / 10, where start is the client's clock just before the upload "
            "(kpipe) or apply_async (Celery) and end is when the system recorded the last "
            "step (the router's finished_at of the run; the date_done Celery stored with the "
            "last task's result); the p50 over chains. Both include starting the chain (kpipe: "
            "upload, S3 notification, adapter and the router's run; Celery: sending the chain "
            f"to Redis). The issue's goal of {STEP_MS_GOAL:g} ms is "
            f"{STEP_MS_GOAL / ISSUE_PEER['step_ms']:.2f} of the Celery figure it quoted "
            f"({ISSUE_PEER['step_ms']:g} ms). The floor: the same {STEPS} steps called in "
            "turn in the bench's own process (the same minio client calls and Pillow work, "
            "no routing), one chain at a time in the same rounds; kpipe_routing = kpipe - "
            "floor, per step.",
            details=details_ms,
            obstacles=obstacles_ms,
        ),
        Figure(
            key="chain_steps_per_s",
            value={**rates, "ratio": _ratio(rates["kpipe"], rates["celery"])},
            goals=[Goal("chain_steps_per_s.kpipe", ">=", STEPS_PER_S_GOAL)],
            method=method_common
            + f"{CLIENTS} client threads submit {open_chains} chains in all, back to back "
            "without waiting for them (an open loop), then wait; steps/s = 10 x chains / (first "
            "submission to the last chain's end, as above); "
            f"{'one round' if ctx.quick else 'two rounds'} per side, in the order kpipe, Celery"
            f"{'' if ctx.quick else ', Celery, kpipe'}, averaged. CPU per step from /proc over "
            f"each round. The issue's goal of {STEPS_PER_S_GOAL:g}/s is "
            f"{STEPS_PER_S_GOAL / ISSUE_PEER['steps_per_s']:.2f} times the Celery figure it "
            f"quoted ({ISSUE_PEER['steps_per_s']:g}/s).",
            details=details_rate,
            obstacles=obstacles_rate,
        ),
    ]


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "mean": statistics.fmean(values),
        "n": float(len(values)),
    }


def _alone_story(kp: _Side) -> str:
    router = kp.extra.get("router_step_ms", [])
    entry = kp.extra.get("entry_ms", [])
    if not router or not entry:
        return "no kpipe chain finished"
    return (
        f"kpipe, one chain at a time: {percentile(entry, 50):.1f} ms (p50) from the upload to "
        f"the router's request of the first step (S3 front with fsync, notification, adapter, "
        f"broker, the router's run), then {percentile(router, 50):.1f} ms per step (p50) from "
        "there to the run's end; hop_latency_ms says where each hop's milliseconds go"
    )


def _cpu_story(name: str, side: _Side) -> str:
    per_step = side.cpu_ms_per_step()
    if not per_step:
        return f"{name}: not measured"
    waits = side.wait_ms_per_step()
    return (
        f"{name}, {CLIENTS} clients: {sum(per_step.values()):.2f} CPU ms per step in all; by "
        "process: "
        + ", ".join(f"{k} {v:.2f}" for k, v in list(per_step.items())[:TOP] if v >= 0.01)
        + "; waiting for a CPU while runnable (ms per step): "
        + ", ".join(
            f"{k} {v:.2f}"
            for k, v in sorted(waits.items(), key=lambda kv: -kv[1])[:TOP]
            if v >= 0.01
        )
    )


def _celery_version() -> str:
    import celery

    return str(celery.__version__)
