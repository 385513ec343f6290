"""Figure 4: ``cold_start_s.<part>`` -- process start to the first event answered.

For each part: start ``functions-framework --source functions/main.py
--target <part>`` with the env ``kpipe up`` gives parts, poll until its port
accepts, then POST a real binary-mode ``step.requested`` CloudEvent (built
with :func:`eventing.http.to_http`) for a 512x512 photo in the stack's S3,
and stop the clock when the reply arrives.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.context import Context
from bench.model import Figure, Goal
from eventing.contract import (
    Event,
    EventType,
    ObjectRef,
    PipelineContext,
    StepCall,
    StepRequest,
)
from eventing.http import to_http
from kpipe.stack import PARTS, REPO, StackConfig, common_env
from tests.e2e.conftest import free_block

PARAMS: dict[str, dict[str, Any]] = {
    "resize": {"max_side": 256},
    "convert": {"format": "png"},
    "blur": {"labels": ["face"]},
}
SOURCE = ObjectRef("uploads", "bench-cold/astronaut.jpg")


def part_env(ctx: Context) -> dict[str, str]:
    """The env ``kpipe up`` gives a part, for this stack."""
    ports = {k: v for k, v in ctx.stack.env.items() if k.startswith("KPIPE_")}
    config = StackConfig(**ports)  # type: ignore[arg-type]
    return {**os.environ, **common_env(config)}


def request_for(part: str) -> tuple[dict[str, str], bytes]:
    """A binary-mode step.requested CloudEvent asking ``part`` to process the photo."""
    request = StepRequest(
        source=SOURCE,
        inputs=(SOURCE,),
        calls=(StepCall("s0", part, PARAMS.get(part, {})),),
        output=ObjectRef("processed", f"bench-cold/{part}/astronaut.jpg"),
        final=True,
    )
    context = PipelineContext("bench-cold", 1, f"cold-{part}", "s0", part)
    event = Event(EventType.STEP_REQUESTED, "/bench", request.to_data(), context)
    return to_http(event)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def cold_start(part: str, env: dict[str, str]) -> dict[str, Any]:
    """Start one part and time it to the port and to the first answered event."""
    port = free_block(1)
    headers, body = request_for(part)
    argv = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--source",
        str(REPO / "functions/main.py"),
        "--target",
        part,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not _listening(port):
            if process.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError(f"{part} did not start (exit {process.returncode})")
            time.sleep(0.005)
        listening = time.perf_counter()
        reply = httpx.post(f"http://127.0.0.1:{port}/", headers=headers, content=body, timeout=60)
        answered = time.perf_counter()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return {
        "total_s": answered - started,
        "to_listening_s": listening - started,
        "first_event_s": answered - listening,
        "status": reply.status_code,
        "reply_type": reply.headers.get("ce-type"),
    }


def import_profile(part: str, env: dict[str, str], top: int = 10) -> list[tuple[str, float]]:
    """The slowest imports (cumulative s) of loading the target and its part, via -X importtime."""
    code = (
        "import functions_framework, functions.main; from functions.catalog import "
        f"default_catalog; default_catalog().get({part!r}).run"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            rows.append((fields[2].rstrip(), int(fields[1]) / 1e6))
    # At any depth (a module's time includes what it imports), without the target itself.
    found = [(n.strip(), s) for n, s in rows if n.strip() != "functions.main"]
    return sorted(found, key=lambda r: -r[1])[:top]


def measure(ctx: Context) -> Figure:
    """Cold-start every part (two in quick mode), one after the other."""
    env = part_env(ctx)
    photo = io.BytesIO()
    from skimage import data

    astronaut = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    Image.fromarray(astronaut).save(photo, format="JPEG", quality=90)
    ctx.stack.upload(ctx.stack.minio(), SOURCE.key, photo.getvalue(), "image/jpeg")
    triton = f"http://{ctx.stack.triton_url}/v2/models/yolov8n/ready"
    has_yolo = httpx.get(triton, timeout=5).status_code == 200
    parts = ["resize", "blur"] if ctx.quick else list(PARTS)
    runs: dict[str, dict[str, Any]] = {}
    value: dict[str, float | None] = {}
    for part in parts:
        if part == "detect_objects" and not has_yolo:
            runs[part] = {"skipped": "yolov8n is not served (no model.onnx in triton/models)"}
            value[part] = None
            continue
        runs[part] = cold_start(part, env)
        value[part] = runs[part]["total_s"]
    slowest = max((p for p in value if value[p] is not None), key=lambda p: value[p] or 0.0)
    imports = import_profile(slowest, env)
    obstacles = [
        f"{p}: {r['to_listening_s']:.2f} s to a listening port (interpreter, functions-framework, "
        f"Flask, gunicorn, functions.main), then {r['first_event_s']:.2f} s to answer the "
        "first event (runtime, part module and its lazy imports, S3 and Triton connections)"
        for p, r in runs.items()
        if "total_s" in r and r["total_s"] > 1.0
    ]
    obstacles.append(
        f"slowest imports of {slowest} (cumulative s): "
        + ", ".join(f"{n} {s:.2f}" for n, s in imports)
    )
    return Figure(
        key="cold_start_s",
        value=value,
        goals=[Goal("cold_start_s.*", "<=", 1.0, "s")],
        method=(
            "functions-framework --target <part> started with the stack's env; poll the port "
            "every 5 ms; POST a binary step.requested for a 512x512 JPEG in the stack's S3; "
            "time from Popen to the reply. One part at a time."
        ),
        details={"parts": runs, "slowest_imports": dict(imports)},
        obstacles=obstacles,
    )
