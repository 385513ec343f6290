"""Figures ``request_bytes`` and ``router_cpu_ms``: what one hop costs the router, in-process.

``request_bytes``: a 12-step pipeline (resize, then five times a detector and a
convert, then annotate), driven through the router with every detector
answering 40 boxes. The size of each step request as it travels (binary
CloudEvent headers and body) is recorded; ``growth`` is the largest over the
smallest request to a step that reads no upstream metadata, after the first
(whose input is the upload, with a shorter key): 1.0 is flat. ``reader`` is
the request to annotate, which reads all five.

``router_cpu_ms``: the router's own CPU per hop (``route_event``: verify,
route, commit the run and its outbox rows, sign the answer) for a 10-step
chain of no-op steps on an SQLite file, with no HTTP and no broker, and a
profile (cProfile) of where it goes, by cumulative share of the total.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.model import Figure, Goal, Table
from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    StepCompleted,
    StepOutput,
    StepRequest,
)
from eventing.http import to_http
from eventing.signing import Role, SigningKey, TrustedKeys, part_principal
from functions.catalog import default_catalog
from router.engine import Router
from router.events_api import route_event
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from router.validation import validate_spec

DETECTORS = ["detect_faces", "detect_objects", "detect_text", "detect_faces", "detect_objects"]
BOXES = {
    "detections": [{"label": "face", "score": 0.9, "box": [i, i, i + 9, i + 9]} for i in range(40)],
    "count": 40,
    "image": {"width": 512, "height": 384},
}
GROWTH_GOAL = 1.05
TOP = 12


def _detector_pipeline() -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "s0", "function": "resize", "params": {"max_side": 512}}]
    for n, detector in enumerate(DETECTORS, start=1):
        steps.append({"id": f"d{n}", "function": detector, "after": [steps[-1]["id"]]})
        steps.append(
            {"id": f"c{n}", "function": "convert", "after": [f"d{n}"], "params": {"format": "png"}}
        )
    steps.append({"id": "boxes", "function": "annotate", "after": [steps[-1]["id"]]})
    return {
        "name": "detectors",
        "trigger": {"bucket": "uploads"},
        "output": {"bucket": "processed"},
        "steps": steps,
    }


def _chain() -> dict[str, Any]:
    steps = [
        {"id": f"s{i}", "function": "resize", "params": {"max_side": 16384}} for i in range(10)
    ]
    for i in range(1, 10):
        steps[i]["after"] = [f"s{i - 1}"]
    return {
        "name": "chain",
        "trigger": {"bucket": "uploads"},
        "output": {"bucket": "processed"},
        "steps": steps,
    }


def _answer(request: Event, metadata: dict[str, Any]) -> Event:
    req = StepRequest.from_data(request.data)
    done = StepCompleted(StepOutput((req.output,), metadata), 1.0, req.attempt)
    assert request.context is not None
    return Event(
        EventType.STEP_COMPLETED,
        f"/kpipe/functions/{request.context.function}",
        done.to_data(),
        context=request.context,
    )


def _size(event: Event) -> int:
    headers, body = to_http(event)
    return len(body) + sum(len(k) + len(v) for k, v in headers.items())


def _request_sizes() -> list[tuple[str, str, int]]:
    catalog = default_catalog()
    with Store("sqlite://") as store:
        store.put_pipeline(validate_spec(_detector_pipeline(), catalog))
        router = Router(store, reads_upstream=lambda f: catalog.get(f).reads_upstream)
        [request] = router.on_object_created(ObjectCreated("uploads", "a.jpg", 10, "e1"))
        sizes = []
        while request.context is not None and request.type is EventType.STEP_REQUESTED:
            sizes.append((request.context.step, request.context.function, _size(request)))
            metadata = BOXES if request.context.function.startswith("detect") else {}
            done = StepCompleted.from_data(_answer(request, metadata).data)
            emitted = router.on_step_completed(request.context, done)
            if not emitted:
                break
            request = emitted[0]
        return sizes


class _Keys:
    """Signing keys of a router, the adapter and the resize part, made for this measurement."""

    def __init__(self) -> None:
        self.router = SigningKey.generate("bench-router")
        self.adapter = SigningKey.generate("bench-adapter")
        self.part = SigningKey.generate("bench-resize")
        self.trusted = TrustedKeys.of(
            {
                Role.ROUTER.value: [self.router],
                Role.ADAPTER.value: [self.adapter],
                part_principal("resize"): [self.part],
            }
        )


def _router_hops(runs: int, profile: cProfile.Profile | None) -> tuple[float, int]:
    """CPU seconds of ``route_event`` over ``runs`` runs of the chain, and the hops."""
    keys = _Keys()
    catalog = default_catalog()
    with tempfile.TemporaryDirectory() as home:
        settings = RouterSettings(KPIPE_HOME=Path(home))
        store = Store(settings.database())
        services = RouterServices(
            settings=settings,
            store=store,
            catalog=catalog,
            health=HealthChecker({}),
            trusted=keys.trusted,
            signer=keys.router,
        )
        try:
            store.put_pipeline(validate_spec(_chain(), catalog))
            return _drive(services, keys, runs, profile)
        finally:
            services.close()


def _drive(
    services: RouterServices, keys: _Keys, runs: int, profile: cProfile.Profile | None
) -> tuple[float, int]:
    cpu, hops = 0.0, 0
    for n in range(runs):
        obj = ObjectCreated("uploads", f"bench/{n}.png", 10, f"etag-{n}", "image/png")
        event: Event | None = keys.adapter.sign(obj.to_event("/kpipe/adapter"))
        while event is not None:
            began = time.process_time()
            if profile is not None:
                profile.enable()
            reply = route_event(services, event)
            if profile is not None:
                profile.disable()
            cpu += time.process_time() - began
            hops += 1
            if reply is None or reply.type is not EventType.STEP_REQUESTED:
                break
            event = keys.part.sign(_answer(reply, {}))
    return cpu, hops


def _profile_table(profile: cProfile.Profile) -> Table:
    stats = pstats.Stats(profile)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    ranked = sorted(entries, key=lambda kv: -kv[1][3])
    for (filename, line, name), (_cc, _nc, _tt, cumulative, _callers) in ranked:
        where = f"{Path(filename).name}:{line} {name}"
        if "cProfile" in where or name.startswith("<"):
            continue
        rows.append((where, f"{100 * cumulative / total:.1f}"))
        if len(rows) == TOP:
            break
    return Table(
        "Where the router's CPU per hop goes (cProfile, cumulative)",
        ("function", "% of route_event"),
        tuple(rows),
    )


def measure(ctx: Context) -> list[Figure]:
    sizes = _request_sizes()
    plain = [size for _step, function, size in sizes if function != "annotate"]
    reader = next((size for _step, function, size in sizes if function == "annotate"), None)
    later = plain[1:]
    growth = max(later) / min(later) if later else None
    runs = 10 if ctx.quick else 60
    _router_hops(3, None)  # warm: imports, the catalogue's parts, SQLAlchemy's caches
    cpu, hops = _router_hops(runs, None)
    profile = cProfile.Profile()
    _router_hops(max(3, runs // 4), profile)
    return [
        Figure(
            key="request_bytes",
            value={
                "first": float(plain[0]) if plain else None,
                "largest": float(max(plain)) if plain else None,
                "growth": growth,
                "reader": float(reader) if reader is not None else None,
            },
            goals=[Goal("request_bytes.growth", "<=", GROWTH_GOAL)],
            method=(
                "A 12-step pipeline: resize, then five times a detector (each answering "
                "40 boxes) and a convert, then annotate, driven through the router in "
                "process. Size of each step request as it travels (binary CloudEvent "
                "headers and body). growth = the largest / the smallest request to a step "
                "that reads no upstream metadata, after the first (which reads the upload, "
                "a shorter key); reader = the request to annotate, which reads the five "
                "detectors' boxes."
            ),
            details={"by_step": [list(entry) for entry in sizes]},
            tables=[
                Table(
                    "Request size by step",
                    ("step", "function", "bytes"),
                    tuple((s, f, str(n)) for s, f, n in sizes),
                )
            ],
        ),
        Figure(
            key="router_cpu_ms",
            value=1000 * cpu / hops if hops else None,
            goals=[Goal("router_cpu_ms", "<=", 1.5, "ms")],
            method=(
                f"The router's own CPU per hop (process time of route_event: verify the "
                f"signature, route, commit the run and its outbox rows, sign the answer) "
                f"over {runs} runs of a 10-step chain of no-op resize steps, on an SQLite "
                f"file, in this process: no HTTP, no broker ({hops} hops). The profile is "
                "a separate, shorter pass under cProfile (which slows it)."
            ),
            tables=[_profile_table(profile)],
        ),
    ]
