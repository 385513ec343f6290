"""A workout that makes every part of the catalogue do real work, several times, at once.

``peak_rss_mb`` samples memory while it runs. Each 1080p photo, one at a
time, is uploaded once and starts a run of each of these pipelines, which
run at the same time::

    faces:   small (resize) -- faces (detect_faces)
    bfaces:  small (resize) -- bfaces (blur_faces)
    text:    small (resize) -- text (detect_text) -- read (read_text, if the catalogue has it)
    redact:  small (resize) -- text (detect_text) -- blur (the text) -- annotate
    convert: conv (convert to WebP)

They are separate pipelines so that a part that fails, or is slow (the face
DNN on a CPU), holds up no other part: blur and annotate work on the text
detector's boxes. ``detect_objects`` is asked directly, with the same photos
at the same time, because no pipeline with it can finish here: without a
YOLO model (none ships) it answers 503 until the request is
``KPIPE_RETRY_FOR_S`` old, and the broker would keep redelivering. Each
part's ``kpipe_events_in_total`` (its ``/metrics``) before and after says how
many requests it took.

Example:
    >>> specs, direct, left = workout_specs(["resize", "detect_text", "blur", "detect_objects"])
    >>> [[s["function"] for s in spec["steps"]] for spec in specs], direct, left
    ([['resize'], ['resize'], ['resize', 'detect_text'], ['resize', 'detect_text', 'blur']], \
['detect_objects'], [])
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.context import Context
from bench.figures._direct import post, step_request
from bench.figures._runs import unique_keys
from eventing.contract import ObjectRef
from kpipe.local.config import PARTS

PREFIX = "bench-every-part"
IN_FLIGHT = 2  # requests at a time to a part asked directly
# Per photo, how long its runs are awaited (quick, full); the next photo goes then.
TIMEOUT_S = (90.0, 180.0)
# (step id, function, params, parent step)
Step = tuple[str, str, dict[str, Any], str | None]
_SMALL: Step = ("small", "resize", {"max_side": 1024}, None)
_TEXT: Step = ("text", "detect_text", {}, "small")
# Per pipeline, its steps; parents come first.
PIPELINES: dict[str, tuple[Step, ...]] = {
    "faces": (_SMALL, ("faces", "detect_faces", {}, "small")),
    "bfaces": (_SMALL, ("bfaces", "blur_faces", {}, "small")),
    "text": (_SMALL, _TEXT, ("read", "read_text", {}, "text")),
    "redact": (
        _SMALL,
        _TEXT,
        ("blur", "blur", {"labels": ["text"]}, "text"),
        ("annotate", "annotate", {}, "blur"),
    ),
    "convert": (("conv", "convert", {"format": "webp"}, None),),
}
# Asked directly: a pipeline with them could not finish (see the module docstring).
DIRECT: dict[str, dict[str, Any]] = {"detect_objects": {}}


def _spec(name: str, parts: Sequence[str]) -> dict[str, Any] | None:
    """One workout pipeline, with the steps whose part (and parents' parts) exist."""
    present: set[str] = set()
    steps = []
    for step_id, function, params, parent in PIPELINES[name]:
        if function not in parts or (parent is not None and parent not in present):
            continue
        present.add(step_id)
        steps.append(
            {"id": step_id, "function": function, "params": params}
            | ({"after": [parent]} if parent else {})
        )
    if not steps:
        return None
    return {
        "name": f"{PREFIX}-{name}",
        "trigger": {"bucket": "uploads", "prefix": f"{PREFIX}/", "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": steps,
    }


def workout_specs(parts: Sequence[str]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The workout for a catalogue of ``parts``.

    Returns:
        The pipeline specs (each with only the steps whose part, and whose
        parents' parts, are in ``parts``), the parts to ask directly, and the
        parts this workout does not know how to exercise.
    """
    specs = [s for s in (_spec(name, parts) for name in PIPELINES) if s is not None]
    routed = {step["function"] for spec in specs for step in spec["steps"]}
    direct = [p for p in parts if p in DIRECT]
    left = [p for p in parts if p not in routed and p not in DIRECT]
    return specs, direct, left


def _ask_directly(ctx: Context, part: str, sources: list[ObjectRef], rounds: int) -> list[int]:
    """POST ``part`` a step request for each source, ``rounds`` times, ``IN_FLIGHT`` at a time."""
    url, key = ctx.stack.part_url(part), ctx.stack.router_key()
    jobs = [(i, s) for i in range(rounds) for s in sources]
    lock = threading.Lock()
    statuses: list[int] = []

    def ask(job: tuple[int, ObjectRef]) -> None:
        i, source = job
        name = f"{PREFIX}/{part}/{i}/{source.key}"
        request = step_request(key, part, source, name, DIRECT[part], f"workout-{i}")
        with httpx.Client(timeout=60) as client:
            answer = post(client, url, request)
        with lock:
            statuses.append(answer.status)

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(ask, jobs))
    return statuses


def _delta(before: float | None, after: float | None) -> int | None:
    return None if before is None or after is None else int(after - before)


def _error(run: dict[str, Any]) -> str:
    """What failed a run, in one line: its pipeline, the step and its error."""
    error = run.get("error") or {}
    text = f"{run['pipeline']}: {error.get('step', '?')}: {error.get('code', '?')}: "
    return (text + str(error.get("message", "")))[:300]


def work_every_part(ctx: Context, photos: int) -> dict[str, Any]:
    """Run the workout on ``photos`` 1080p photos; what each part did.

    Returns:
        ``requests`` (per part, requests it took during the workout), ``runs``,
        ``failed_runs``, ``errors`` and ``unfinished`` (runs not done within the
        photo's time, still going after it), ``direct_statuses`` (per part
        asked directly, the HTTP statuses it answered) and ``not_exercised``.
    """
    timeout_s = TIMEOUT_S[0] if ctx.quick else TIMEOUT_S[1]
    stack = ctx.stack
    specs, direct, left = workout_specs(PARTS)
    versions = [(spec["name"], stack.apply(spec)) for spec in specs]
    items = unique_keys(f"{PREFIX}/", ctx.photos[:photos], ".jpg")
    # The parts asked directly read copies put beside the store's notifications.
    sources = [ObjectRef("uploads", f"{PREFIX}-direct/{key}") for key, _ in items]
    backend = stack.backend_minio()
    for source, (_, data) in zip(sources, items, strict=True):
        stack.upload(backend, source.key, data, "image/jpeg")
    before = {p: stack.part_metric(p, "kpipe_events_in") for p in PARTS}
    runs: list[dict[str, Any]] = []
    unfinished: list[str] = []
    with ThreadPoolExecutor(max(1, len(direct))) as pool:
        asked = {p: pool.submit(_ask_directly, ctx, p, sources, 2) for p in direct}
        client = stack.minio()
        for key, data in items:
            etag = stack.upload(client, key, data, "image/jpeg")
            ids = [stack.run_id(name, version, key, etag) for name, version in versions]
            try:
                runs += stack.wait_runs(ids, timeout_s, poll_s=0.25)
            except TimeoutError as exc:
                unfinished.append(f"{key}: {exc}")
        statuses = {p: f.result() for p, f in asked.items()}
    after = {p: stack.part_metric(p, "kpipe_events_in") for p in PARTS}
    failed = [r for r in runs if r["status"] != "succeeded"]
    return {
        "photos": photos,
        "pipelines": [name for name, _ in versions],
        "requests": {p: _delta(before[p], after[p]) for p in PARTS},
        "runs": len(runs),
        "failed_runs": len(failed),
        "errors": sorted({_error(r) for r in failed}),
        "unfinished": unfinished,
        "direct_statuses": statuses,
        "not_exercised": left,
    }
