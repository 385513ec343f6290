"""Figure 1: ``overhead_ratio`` -- routed and fused throughput against the in-process limit.

One pipeline, resize (max side 1024) -> detect_faces -> blur (faces), over
the same 1080p photos, three ways at the same concurrency:

(a) in process (one worker process per photo in flight): per photo, put
    the original into the stack's own object store at the endpoint the parts
    use (rclone's S3 port, which sends no notifications), then three
    :func:`functions.step.run_request` calls with the requests the router
    would send -- each fetches its input from S3, decodes, runs the part,
    encodes and stores its output. No events, no HTTP besides S3.
(b) routed: upload -> notification -> adapter -> broker -> router -> parts
    -> ... -> run succeeded, through ``kpipe up``.
(c) fused: (b) with ``fuse: true`` (one invocation runs the three steps).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench._procs import cpu_by_component, cpu_delta
from bench._stack import BenchStack, timestamp
from bench.context import Context
from bench.figures._runs import chain, drive, throughput, unique_keys
from bench.model import Figure, Goal, Table
from eventing.contract import ObjectRef, PipelineContext, StepCall, StepOutput, StepRequest
from eventing.objectstore import MinioStore
from functions.catalog import default_catalog
from functions.runtime import PerThreadInference, StepRuntime
from functions.step import run_request
from kpipe.core.settings import ImageSettings, InferenceSettings, ObjectStoreSettings

CONCURRENCY = 2
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("resize", {"max_side": 1024}),
    ("detect_faces", {}),
    ("blur", {"labels": ["face"]}),
]


def in_process_photo(runtime: StepRuntime, name: str, data: bytes) -> float:
    """Run the three steps on one photo as the router would request them; their ms."""
    source = ObjectRef("uploads", f"bench-inproc/{name}.jpg")
    runtime.store.put(source, data, "image/jpeg")
    inputs: tuple[ObjectRef, ...] = (source,)
    upstream: dict[str, StepOutput] = {}
    total_ms = 0.0
    for i, (function, params) in enumerate(STEPS):
        final = i == len(STEPS) - 1
        key = f"inproc/{name}.jpg" if final else f"inproc/_runs/{name}/s{i}/{name}.jpg"
        request = StepRequest(
            source=source,
            inputs=inputs,
            calls=(StepCall(f"s{i}", function, params),),
            output=ObjectRef("processed", key),
            final=final,
            upstream=dict(upstream),
        )
        done = run_request(request, runtime, PipelineContext("inproc", 1, name))
        upstream[f"s{i}"] = done.result
        inputs = done.result.outputs
        total_ms += done.duration_ms
    return total_ms


_RUNTIME: list[StepRuntime] = []


def _worker_init(endpoint: str, triton_url: str, warmup: bytes) -> None:
    """In each worker process: open the store and Triton's client, load the parts' modules."""
    settings = ObjectStoreSettings(MINIO_ENDPOINT=endpoint)
    inference = PerThreadInference(InferenceSettings(TRITON_URL=triton_url))
    runtime = StepRuntime(
        MinioStore(settings),
        default_catalog(),
        ImageSettings(),
        inference=inference,
    )
    _RUNTIME.append(runtime)
    in_process_photo(_RUNTIME[0], "warmup", warmup)


def _worker_photo(photo: tuple[str, bytes]) -> float:
    return in_process_photo(_RUNTIME[0], *photo)


def in_process(
    endpoint: str, triton_url: str, photos: list[tuple[str, bytes]]
) -> tuple[float, list[float]]:
    """(photos per second, per-photo step ms) of way (a) at :data:`CONCURRENCY`.

    One worker process per photo in flight, as each part has its own process in
    (b): threads of one process would share one GIL and OpenCV's thread pool.
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        CONCURRENCY,
        mp_context=spawn,
        initializer=_worker_init,
        initargs=(endpoint, triton_url, photos[0][1]),
    ) as pool:
        # Start (and warm up) every worker before the clock starts.
        list(pool.map(time.sleep, [0.5] * CONCURRENCY))
        started = time.perf_counter()
        step_ms = list(pool.map(_worker_photo, photos))
        return len(photos) / (time.perf_counter() - started), step_ms


def routed(
    stack: BenchStack, name: str, version: int, photos: list[tuple[str, bytes]]
) -> tuple[float, dict[str, float]]:
    """(photos per second, latency breakdown) of a pipeline through the stack."""
    warm = unique_keys(f"{name}/w", photos[:1], ".jpg")
    drive(stack, name, version, warm, "image/jpeg", 1, watch=True)
    items = unique_keys(f"{name}/", photos, ".jpg")
    cpu_before = cpu_by_component(stack.pid)
    driven = drive(stack, name, version, items, "image/jpeg", CONCURRENCY, watch=True)
    cpu = cpu_delta(cpu_before, cpu_by_component(stack.pid))
    failed, runs = driven.failed(), driven.runs
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} runs failed, e.g. {failed[0]}")
    latency = [r["duration_ms"] for r in runs]
    compute = [sum(s["duration_ms"] or 0.0 for s in r["steps"]) for r in runs]
    started = [
        ((timestamp(r["created_at"]) or 0.0) - driven.uploaded_at[r["id"]]) * 1000.0 for r in runs
    ]
    return throughput(driven), {
        "run_ms_mean": statistics.fmean(latency),
        "step_ms_mean": statistics.fmean(compute),
        "outside_steps_ms_mean": statistics.fmean(
            a - b for a, b in zip(latency, compute, strict=True)
        ),
        "routing_share": statistics.fmean(
            (a - b) / a for a, b in zip(latency, compute, strict=True) if a > 0
        ),
        "upload_to_run_ms_mean": statistics.fmean(started),
    } | {f"cpu_ms_per_photo.{k}": v * 1000 / len(runs) for k, v in cpu.items() if v > 0}


def measure(ctx: Context) -> Figure:
    """Throughput of (a), (b), (c); (a) is run before and after (b, c) and averaged."""
    photos = ctx.photos
    specs = {
        "routed": chain("bench-routed", "bench-routed/", ".jpg", STEPS),
        "fused": chain("bench-fused", "bench-fused/", ".jpg", STEPS, fuse=True),
    }
    versions = {k: ctx.stack.apply(s) for k, s in specs.items()}
    endpoint = ctx.stack.s3_backend_endpoint
    triton = ctx.stack.triton_url
    before, inproc_ms = in_process(endpoint, triton, photos)
    ways = {k: routed(ctx.stack, specs[k]["name"], versions[k], photos) for k in specs}
    after, _ = in_process(endpoint, triton, photos)
    return figure(len(photos), (before, after), statistics.fmean(inproc_ms), ways)


def made_of(tp: float, steps_ms: float, routing_ms: float, run_ms: float) -> dict[str, float]:
    """What one worker's cycle per photo is made of, in ms; the parts add up to the cycle.

    Each of the :data:`CONCURRENCY` workers takes one photo at a time, so a
    photo's cycle is ``CONCURRENCY / throughput`` and the throughput ratio is
    the in-process cycle over the way's. A cycle is the steps' own time, the
    routing and delivery between them inside the run, and what lies outside
    the run: for a routed way the upload, notification, adapter, broker and
    the router creating the run, and the client seeing it end; in process,
    the put of the original.

    Args:
        tp: the way's photos per second.
        steps_ms: the sum of a photo's steps' own run_request time (mean).
        routing_ms: the run's time outside its steps (0 in process).
        run_ms: the run's duration (the steps' time in process).
    """
    cycle = CONCURRENCY * 1000.0 / tp
    return {
        "cycle_ms": cycle,
        "steps_ms": steps_ms,
        "routing_in_run_ms": routing_ms,
        "outside_the_run_ms": cycle - run_ms,
    }


def figure(
    photos: int,
    in_process_runs: tuple[float, float],
    inproc_step_ms: float,
    ways: dict[str, tuple[float, dict[str, float]]],
) -> Figure:
    """The figure from the measured ways (pure: the tests build it from made-up numbers).

    Args:
        photos: how many photos each way ran.
        in_process_runs: photos/s of (a), before and after (b) and (c).
        inproc_step_ms: mean step ms of a photo in (a).
        ways: per way (``routed``, ``fused``): photos/s and the breakdown of :func:`routed`.
    """
    limit = statistics.fmean(in_process_runs)
    value: dict[str, float | None] = {}
    for way, (tp, breakdown) in ways.items():
        value[f"routing_share_{way}"] = breakdown["routing_share"]
        value[f"throughput_{way}"] = tp / limit
    parts = {"in_process": made_of(limit, inproc_step_ms, 0.0, inproc_step_ms)} | {
        way: made_of(tp, b["step_ms_mean"], b["outside_steps_ms_mean"], b["run_ms_mean"])
        for way, (tp, b) in ways.items()
    }
    details: dict[str, Any] = {
        "photos": photos,
        "concurrency": CONCURRENCY,
        "photos_per_s": {"in_process": limit, "in_process_runs": list(in_process_runs)}
        | {k: tp for k, (tp, _) in ways.items()},
        "in_process_step_ms_mean": inproc_step_ms,
        "throughput_made_of_ms_per_photo": parts,
    } | {f"{k}_latency": b for k, (_, b) in ways.items()}
    obstacles = []
    for way, (_, breakdown) in ways.items():
        obstacles.append(
            f"{way}: a run took {breakdown['run_ms_mean']:.0f} ms on average, of which "
            f"{breakdown['step_ms_mean']:.0f} ms inside the parts (in process the same steps "
            f"took {inproc_step_ms:.0f} ms) and "
            f"{breakdown['outside_steps_ms_mean']:.0f} ms in routing and delivery "
            f"({breakdown['routing_share']:.1%} of the run); CPU ms per photo by process: "
            + ", ".join(
                f"{k.removeprefix('cpu_ms_per_photo.')} {v:.0f}"
                for k, v in breakdown.items()
                if k.startswith("cpu_ms_per_photo.") and v >= 1
            )
        )
    rows = tuple(
        (
            way,
            f"{parts['in_process']['cycle_ms'] / p['cycle_ms']:.3f}",
            "" if way == "in_process" else f"{value[f'routing_share_{way}']:.3f}",
            *(f"{p[k]:.0f}" for k in _MADE_OF),
        )
        for way, p in parts.items()
    )
    base = parts["in_process"]
    for way in ways:
        p = parts[way]
        obstacles.append(
            f"{way}: a photo's cycle took {p['cycle_ms'] - base['cycle_ms']:+.0f} ms against "
            f"in process: its steps {p['steps_ms'] - base['steps_ms']:+.0f} ms, routing in the "
            f"run {p['routing_in_run_ms']:+.0f} ms, outside the run "
            f"{p['outside_the_run_ms'] - base['outside_the_run_ms']:+.0f} ms"
        )
    return Figure(
        key="overhead_ratio",
        value=value,
        goals=[
            Goal("overhead_ratio.routing_share_routed", "<=", 0.05),
            Goal("overhead_ratio.routing_share_fused", "<=", 0.03),
            Goal("overhead_ratio.throughput_routed", ">=", 0.95),
            Goal("overhead_ratio.throughput_fused", ">=", 0.97),
        ],
        method=(
            f"{photos} real 1080p JPEG photos, resize(1024) -> detect_faces -> blur, "
            f"{CONCURRENCY} photos in flight in every way. (a) in process, one worker process "
            "per photo in flight: put the original "
            "into the stack's object store at the endpoint the parts use (rclone's S3 port, "
            "no notifications), then the three step-SDK "
            "run_request calls (S3 get, decode, part, encode, S3 put), as the router would "
            "request them; run before and after (b) and (c), averaged. (b) routed and (c) fused "
            "through kpipe up: upload, wait for the run, next; throughput = photos / (last "
            "run's finished_at - first upload). Each way is warmed up with one photo first. "
            "routing_share = per run, (the run's duration - the sum of its steps' own "
            "run_request time) / the run's duration, averaged: the routing and delivery share "
            "of a run's time. throughput = throughput / throughput(a) = (a)'s cycle / the way's, "
            f"where a photo's cycle is {CONCURRENCY} / throughput (each worker takes one photo "
            "at a time); the table splits each way's cycle into its steps' own time, routing "
            "inside the run, and what lies outside the run (routed: upload, notification, "
            "adapter, broker, the router creating the run, the client seeing it end; in "
            "process: the put of the original)."
        ),
        details=details,
        obstacles=obstacles,
        tables=[
            Table(
                "What the throughput ratio is made of (ms per photo of one worker's cycle)",
                ("way", "throughput ratio", "routing share", *_MADE_OF_COLUMNS),
                rows,
            )
        ],
    )


_MADE_OF = ("cycle_ms", "steps_ms", "routing_in_run_ms", "outside_the_run_ms")
_MADE_OF_COLUMNS = ("a photo's cycle", "the steps", "routing in the run", "outside the run")
