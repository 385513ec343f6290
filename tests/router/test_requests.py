"""A step request carries only the upstream metadata its part reads.

Detectors put their detections in their step's metadata; only the parts that
read upstream steps (``Part.reads_upstream``: annotate, blur, read_text) need
them. So the request to a resize or a detector ten steps into a pipeline is
as large as the first one, and a run does not move O(n²) bytes.
"""

from __future__ import annotations

from typing import Any

from eventing.contract import Event, StepRequest
from eventing.http import to_http
from functions.catalog import Catalog
from router.engine import Router
from router.store import Store
from tests.router.test_engine import UPLOAD, complete, register

DETECTORS = ["detect_faces", "detect_objects", "detect_text", "detect_faces", "detect_objects"]
# resize, then five times a detector and a convert, then annotate: 12 steps.
STEPS: list[dict[str, Any]] = [{"id": "s0", "function": "resize", "params": {"max_side": 512}}]
for n, detector in enumerate(DETECTORS, start=1):
    STEPS.append({"id": f"d{n}", "function": detector, "after": [STEPS[-1]["id"]]})
    STEPS.append(
        {"id": f"c{n}", "function": "convert", "after": [f"d{n}"], "params": {"format": "png"}}
    )
STEPS.append({"id": "boxes", "function": "annotate", "after": [STEPS[-1]["id"]]})
LONG = {
    "name": "long",
    "trigger": {"bucket": "uploads"},
    "output": {"bucket": "processed"},
    "steps": STEPS,
}
BOXES = {
    "detections": [{"label": "face", "score": 0.9, "box": [i, i, i + 9, i + 9]} for i in range(40)],
    "count": 40,
    "image": {"width": 512, "height": 384},
}


def _run_through(router: Router) -> list[Event]:
    """Every request of one run, each step answered (detectors with 40 boxes)."""
    [request] = router.on_object_created(UPLOAD)
    requests = [request]
    while True:
        step = request.context.step if request.context else ""
        metadata = BOXES if step.startswith("d") else {}
        emitted = [e for e in complete(router, request, metadata) if e.context and e.context.step]
        if not emitted:
            return requests
        [request] = emitted
        requests.append(request)


def _size(event: Event) -> int:
    headers, body = to_http(event)
    return len(body) + sum(len(k) + len(v) for k, v in headers.items())


def test_a_request_does_not_grow_with_the_steps_before_it(store: Store, catalog: Catalog) -> None:
    register(store, catalog, LONG)
    router = Router(store, reads_upstream=lambda f: catalog.get(f).reads_upstream)
    requests = _run_through(router)
    assert [r.context.step for r in requests if r.context] == [s["id"] for s in STEPS]
    sizes = [_size(r) for r in requests[:-1]]
    # flat: only the keys (one step id longer or shorter) differ
    assert max(sizes) - min(sizes) < 200, sizes
    # ...and the part that reads them gets every detector's boxes
    annotate = StepRequest.from_data(requests[-1].data)
    assert set(annotate.upstream) == {s["id"] for s in STEPS[:-1]}
    assert all(annotate.upstream[f"d{n}"].metadata == BOXES for n in range(1, 6))


def test_without_the_declaration_every_request_carries_all_upstream(
    store: Store, catalog: Catalog
) -> None:
    # What the first test guards against: each detector adds its boxes to every later request.
    register(store, catalog, LONG)
    sizes = [_size(r) for r in _run_through(Router(store))]
    assert sizes[-2] > sizes[1] + 4 * len(str(BOXES))


def test_only_the_parts_that_read_upstream_declare_it(catalog: Catalog) -> None:
    readers = {name for name in catalog.names() if catalog.get(name).reads_upstream}
    assert readers == {"annotate", "blur", "read_text"}
