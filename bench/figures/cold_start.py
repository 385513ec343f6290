"""Figure 4: ``cold_start_s.<part>`` -- process start to the first event answered.

For each part: start it with the command line and env ``kpipe up`` gives it
(``uvicorn functions_framework.aio:app``, ``FUNCTION_TARGET=<part>``), poll
until its port accepts, then POST a real binary-mode ``step.requested``
CloudEvent, signed with the router's key, for a 512x512 photo in the stack's
S3, and stop the clock when the reply arrives.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.context import Context
from bench.figures._direct import step_request
from bench.model import Figure, Goal
from eventing.contract import ObjectRef
from kpipe.local.config import PARTS, REPO
from kpipe.local.stack import common_env, process_specs
from tests.e2e.conftest import free_block

PARAMS: dict[str, dict[str, Any]] = {
    "resize": {"max_side": 256},
    "convert": {"format": "png"},
    "blur": {"labels": ["face"]},
}
SOURCE = ObjectRef("uploads", "bench-cold/astronaut.jpg")
GOAL_S = 0.5


def part_process(ctx: Context, part: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and env ``kpipe up`` runs ``part`` with on this stack, on ``port``.

    Taken from :func:`kpipe.local.stack.process_specs` (which rewrites the stack's
    triggers file with the same content), so the part gets exactly what
    ``kpipe up`` gives it: its signing key, the trusted keys, rclone's S3 port.
    """
    config = ctx.stack.config
    spec = next(s for s in process_specs(config) if s.name == part)
    argv = list(spec.argv)
    argv[argv.index("--port") + 1] = str(port)
    return argv, {**os.environ, **common_env(config), **spec.env}


def request_for(ctx: Context, part: str) -> tuple[dict[str, str], bytes]:
    """A signed step.requested asking ``part`` to process the photo."""
    name = f"cold/{part}/astronaut.jpg"
    key = ctx.stack.router_key()
    return step_request(key, part, SOURCE, name, PARAMS.get(part, {}), f"cold-{part}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def cold_start(ctx: Context, part: str) -> dict[str, Any]:
    """Start one part and time it to the port and to the first answered event."""
    port = free_block(1)
    headers, body = request_for(ctx, part)
    argv, env = part_process(ctx, part, port)
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
    photo = io.BytesIO()
    from skimage import data

    astronaut = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    Image.fromarray(astronaut).save(photo, format="JPEG", quality=90)
    ctx.stack.upload(ctx.stack.backend_minio(), SOURCE.key, photo.getvalue(), "image/jpeg")
    triton = f"http://{ctx.stack.triton_url}/v2/models/yolov8n/ready"
    has_yolo = httpx.get(triton, timeout=5).status_code == 200
    parts = ["resize", "blur"] if ctx.quick else list(PARTS)
    runs: dict[str, dict[str, Any]] = {}
    value: dict[str, float | None] = {}
    for part in parts:
        runs[part] = cold_start(ctx, part)
        value[part] = runs[part]["total_s"]
    slowest = max((p for p in value if value[p] is not None), key=lambda p: value[p] or 0.0)
    imports = import_profile(slowest, part_process(ctx, slowest, 0)[1])
    obstacles = [
        f"{p}: {r['to_listening_s']:.2f} s to a listening port (interpreter, functions-framework, "
        f"uvicorn, functions.main), then {r['first_event_s']:.2f} s to answer the "
        "first event (runtime, part module and its lazy imports, S3 and Triton connections)"
        for p, r in runs.items()
        if r["total_s"] > GOAL_S
    ]
    if "detect_objects" in runs and not has_yolo:
        obstacles.append(
            "detect_objects: no YOLO model is served (none ships), so its first event was "
            f"answered {runs['detect_objects']['status']} (model not ready, redeliver) after "
            "fetching and decoding the photo and asking Triton: its process start and first "
            "request, without the inference"
        )
    obstacles.append(
        f"slowest imports of {slowest} (cumulative s): "
        + ", ".join(f"{n} {s:.2f}" for n, s in imports)
    )
    return Figure(
        key="cold_start_s",
        value=value,
        goals=[Goal("cold_start_s.*", "<=", GOAL_S, "s")],
        method=(
            "Each part (uvicorn functions_framework.aio:app, FUNCTION_TARGET=<part>) started "
            "with the command line and env kpipe up gives it; poll the port every 5 ms; POST a "
            "signed binary step.requested for a 512x512 JPEG in the stack's S3; time from Popen "
            "to the reply. One part at a time."
        ),
        details={"parts": runs, "slowest_imports": dict(imports)},
        obstacles=obstacles,
    )
