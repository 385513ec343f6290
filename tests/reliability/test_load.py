"""A burst of uploads through a 3-step pipeline on the whole local stack.

Every run succeeds, none is lost, none is duplicated, and the throughput is
printed and written to ``test-artifacts/load.json``.
"""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Stack
from tests.reliability._images import noise_jpeg
from tests.reliability._stack import counters, delta

pytestmark = [pytest.mark.slow, pytest.mark.stack]

UPLOADS = 500
PIPELINE = {
    "name": "rel-load",
    "trigger": {"bucket": "uploads", "prefix": "load/"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "small", "function": "resize", "params": {"max_side": 32}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {"id": "blur", "function": "blur", "after": ["faces"], "params": {"labels": ["face"]}},
    ],
}
ARTIFACT = REPO / "test-artifacts" / "load.json"


def _count(stack: Stack, status: str | None = None) -> int:
    params = {"pipeline": "rel-load", "limit": "1"} | ({"status": status} if status else {})
    with stack.client() as api:
        return int(api.get("/v1/runs", params=params).json()["total"])


def test_a_burst_of_uploads_all_succeed_once(stack: Stack) -> None:
    stack.apply(PIPELINE)
    data = noise_jpeg(64)
    s3 = stack.minio()
    before = counters(stack)

    def put(i: int) -> None:
        s3.put_object("uploads", f"load/{i:04d}.jpg", io.BytesIO(data), len(data), "image/jpeg")

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(UPLOADS)))
    uploaded_s = time.monotonic() - started
    deadline = started + 240
    while _count(stack, "succeeded") + _count(stack, "failed") < UPLOADS:
        assert time.monotonic() < deadline, f"{_count(stack, 'succeeded')} of {UPLOADS} ran"
        time.sleep(0.25)
    elapsed_s = time.monotonic() - started

    assert _count(stack, "failed") == 0
    assert _count(stack) == UPLOADS  # none lost, none duplicated
    finals = [
        o.object_name for o in s3.list_objects("processed", prefix="rel-load/load/", recursive=True)
    ]
    assert sorted(finals) == [f"rel-load/load/{i:04d}.jpg" for i in range(UPLOADS)]
    change = delta(before, counters(stack))
    report = {
        "uploads": UPLOADS,
        "steps": len(PIPELINE["steps"]),
        "upload_s": round(uploaded_s, 2),
        "elapsed_s": round(elapsed_s, 2),
        "runs_per_s": round(UPLOADS / elapsed_s, 2),
        "steps_per_s": round(UPLOADS * 3 / elapsed_s, 2),
        "broker": {k: change.get(k, 0) for k in ("received", "delivered", "retries", "failed")},
    }
    Path(ARTIFACT).parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nload: {json.dumps(report)}")
    assert change.get("failed", 0) == 0
