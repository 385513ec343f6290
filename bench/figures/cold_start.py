"""Figure 4: ``cold_start_s.<part>`` -- process start to the first successful answer.

For each part: start it with the command line and env ``kpipe up`` gives it
(``python -m functions --target <part>``), poll until its port accepts, then
POST a real binary-mode ``step.requested`` CloudEvent, signed with the
router's key, that makes the part do its real work (see
:mod:`bench.figures._cold`: a face for the face parts, a page of text for the
text parts, upstream boxes for the parts that obscure or read them), and
stop the clock when the answer arrives. Only an answer that shows the work
is timed; a part that cannot answer (no model) is reported as such.

Per part the figure keeps the timeline: exec to listening, listening to the
first answer, the part's own step time in that answer, the same request
answered warm, the CPU the process used, and (from a separate run under
``-X importtime``) how much of each phase was imports. The parts are also
started with the functions-framework command they ran before
(``uvicorn functions_framework.aio:app``), side by side.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench._procs import cpu_s
from bench.context import Context
from bench.faces import ASTRONAUT_FACE
from bench.figures._cold import PROBES, Probe, import_timeline, verdict
from bench.figures._direct import step_request
from bench.model import Figure, Goal, Table
from eventing.contract import ObjectRef, StepOutput
from functions.inference import TritonInferenceClient
from functions.part import Picture, StepContext
from functions.parts.text import PART as DETECT_TEXT
from functions.parts.text import TextParams
from kpipe.local.config import PARTS, REPO
from kpipe.local.stack import common_env, process_specs
from tests.e2e.conftest import free_block

SOURCES = {
    "face": ObjectRef("uploads", "bench-cold/astronaut.jpg"),
    "page": ObjectRef("uploads", "bench-cold/page.jpg"),
}
GOAL_S = 0.5
RUNS = 3  # cold starts per part and command (1 in quick mode); the figure is their median
# The command the parts ran before python -m functions, for the side-by-side ratio.
FUNCTIONS_FRAMEWORK = ["-m", "uvicorn", "functions_framework.aio:app"]


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
    env = {**os.environ, **common_env(config), **spec.env, "FUNCTION_TARGET": part}
    return argv, env


def functions_framework_process(
    ctx: Context, part: str, port: int
) -> tuple[list[str], dict[str, str]]:
    """``part`` served by functions-framework's ASGI app under uvicorn (kpipe up's old command)."""
    argv, env = part_process(ctx, part, port)
    host = argv[argv.index("--host") + 1]
    command = [argv[0], *FUNCTIONS_FRAMEWORK, "--host", host, "--port", str(port)]
    return [*command, "--no-access-log", "--log-level", "warning"], env


def _photos() -> dict[str, bytes]:
    """The astronaut (a face) and scikit-image's scanned page (lines of text), as JPEG."""
    from skimage import data

    page = np.asarray(data.page())  # type: ignore[no-untyped-call]
    pixels = {
        "face": np.asarray(data.astronaut()),  # type: ignore[no-untyped-call]
        "page": np.repeat(page[:, :, None], 3, axis=2),
    }
    out = {}
    for name, array in pixels.items():
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=90)
        out[name] = buffer.getvalue()
    return out


def upstreams(ctx: Context, photos: dict[str, bytes]) -> dict[str, dict[str, StepOutput]]:
    """What an upstream step hands the parts that need one (see :class:`Probe`).

    ``text`` is detect_text's real answer for the page, run here on the stack's Triton.
    """
    x1, y1, x2, y2 = ASTRONAUT_FACE
    faces = {
        "detections": [{"label": "face", "score": 0.99, "box": [x1, y1, x2, y2]}],
        "count": 1,
        "image": {"width": 512, "height": 512},
    }
    from functions.images import decode

    page = decode(photos["page"], SOURCES["page"], 50_000_000)
    with TritonInferenceClient(ctx.stack.triton_url, timeout_s=120) as triton:
        context = StepContext(SOURCES["page"], inference=lambda: triton)
        found = DETECT_TEXT.run([Picture(page.pixels, "jpeg")], TextParams(), context)
    return {
        "faces": {"up": StepOutput((), faces)},
        "text": {"up": StepOutput((), found.metadata)},
    }


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _read_lines(stream: Any, started: float, into: list[tuple[float, str]]) -> None:
    for line in stream:
        into.append((time.perf_counter() - started, line))


def cold_start(
    argv: list[str],
    env: dict[str, str],
    port: int,
    request: tuple[dict[str, str], bytes],
    probe: Probe,
    importtime: bool = False,
) -> dict[str, Any]:
    """Start one part process, time it to its port and to its first answer, then ask again.

    With ``importtime`` the process runs under ``-X importtime`` and the
    result holds the import timeline (its clock is then not the figure's).
    """
    headers, body = request
    lines: list[tuple[float, str]] = []
    if importtime:
        env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if importtime else subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    reader = None
    if importtime:
        reader = threading.Thread(target=_read_lines, args=(process.stderr, started, lines))
        reader.start()
    try:
        while not _listening(port):
            if process.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError(f"{argv} did not start (exit {process.returncode})")
            time.sleep(0.005)
        listening = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            reply = client.post(f"http://127.0.0.1:{port}/", headers=headers, content=body)
            answered = time.perf_counter()
            cpu = cpu_s(process.pid)
            again = client.post(f"http://127.0.0.1:{port}/", headers=headers, content=body)
            warm = time.perf_counter() - answered
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
    event_type = reply.headers.get("ce-type")
    is_json = reply.headers.get("content-type", "").startswith("application/")
    data = reply.json() if is_json else None
    why_not = verdict(reply.status_code, event_type, data, probe)
    result: dict[str, Any] = {
        "total_s": answered - started,
        "to_listening_s": listening - started,
        "first_answer_s": answered - listening,
        "step_s": (data or {}).get("duration_ms", 0.0) / 1000.0 if why_not is None else None,
        "warm_answer_s": warm if again.status_code == 200 else None,
        "cpu_s": cpu,
        "status": reply.status_code,
        "reply_type": event_type,
        "not_counted": why_not,
    }
    if importtime:
        result["imports"] = import_timeline(lines, listening - started, answered - started)
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


COMMANDS = {"kpipe_up": part_process, "functions_framework": functions_framework_process}


def measure_part(
    ctx: Context,
    part: str,
    commands: list[str],
    requests: dict[str, tuple[dict[str, str], bytes]],
    runs: int,
) -> dict[str, dict[str, Any]]:
    """``runs`` cold starts of one part per command, the commands taking turns.

    Taking turns puts the commands under the same load of this shared
    machine. Per command: the medians, the reasons answers did not count,
    and each run; ``total_s`` is None when any answer did not count.
    """
    found: dict[str, list[dict[str, Any]]] = {c: [] for c in commands}
    for _ in range(runs):
        for command in commands:
            port = free_block(1)
            argv, env = COMMANDS[command](ctx, part, port)
            found[command].append(cold_start(argv, env, port, requests[part], PROBES[part]))
    out = {}
    keys = ("total_s", "to_listening_s", "first_answer_s", "step_s", "warm_answer_s", "cpu_s")
    for command, results in found.items():
        failures = [r["not_counted"] for r in results if r["not_counted"]]
        summary: dict[str, Any] = {k: _median(results, k) for k in keys}
        if failures:
            summary["total_s"] = None
        out[command] = {**summary, "not_counted": failures, "runs": results}
    return out


def measure(ctx: Context) -> Figure:
    """Cold-start every part (two in quick mode), one after the other."""
    photos = _photos()
    for name, ref in SOURCES.items():
        ctx.stack.upload(ctx.stack.backend_minio(), ref.key, photos[name], "image/jpeg")
    upstream = upstreams(ctx, photos)
    key = ctx.stack.router_key()
    requests = {}
    for part, probe in PROBES.items():
        request = step_request(
            key,
            part,
            SOURCES[probe.photo],
            f"cold/{part}/{probe.photo}.jpg",
            probe.params,
            f"cold-{part}",
            upstream.get(probe.upstream or "", {}),
        )
        requests[part] = request
    parts = ["resize", "detect_faces"] if ctx.quick else list(PARTS)
    runs = 1 if ctx.quick else RUNS
    commands = ["kpipe_up"] if ctx.quick else list(COMMANDS)
    measured = {p: measure_part(ctx, p, commands, requests, runs) for p in parts}
    lean = {p: m["kpipe_up"] for p, m in measured.items()}
    before = {p: m["functions_framework"] for p, m in measured.items() if len(m) > 1}
    profiles = {}
    for part in parts:
        port = free_block(1)
        argv, env = part_process(ctx, part, port)
        profiles[part] = cold_start(argv, env, port, requests[part], PROBES[part], True)["imports"]
    return figure(lean, before, profiles, upstream)


def figure(
    lean: dict[str, dict[str, Any]],
    before: dict[str, dict[str, Any]],
    profiles: dict[str, dict[str, Any]],
    upstream: dict[str, dict[str, StepOutput]],
) -> Figure:
    """The figure from the measured parts (pure: the tests build it from made-up runs)."""
    value: dict[str, float | None] = {p: r["total_s"] for p, r in lean.items()}
    obstacles = []
    for part, r in lean.items():
        if r["not_counted"]:
            obstacles.append(
                f"{part}: not timed, its first answer did not do the work: "
                + "; ".join(sorted(set(r["not_counted"])))
            )
        elif (r["total_s"] or 0.0) > GOAL_S:
            imports = profiles.get(part, {})
            obstacles.append(
                f"{part}: {r['to_listening_s']:.2f} s to a listening port (of it imports "
                f"{imports.get('before_listening_s', 0.0):.2f} s: "
                + ", ".join(f"{m} {s:.2f}" for m, s in imports.get("slowest_before", [])[:4])
                + f"), then {r['first_answer_s']:.2f} s to the first answer (the step itself "
                f"{r['step_s'] or 0.0:.2f} s, warm the whole answer takes "
                f"{r['warm_answer_s'] or 0.0:.2f} s; imports "
                f"{imports.get('during_first_answer_s', 0.0):.2f} s: "
                + ", ".join(f"{m} {s:.2f}" for m, s in imports.get("slowest_during", [])[:4])
                + f"); the process used {r['cpu_s'] or 0.0:.2f} CPU s"
            )

    def cell(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    rows = []
    for part, r in lean.items():
        imports = profiles.get(part, {})
        old = before.get(part, {}).get("total_s")
        ratio = None if old in (None, 0) or r["total_s"] is None else r["total_s"] / old
        old_cpu = before.get(part, {}).get("cpu_s")
        cpu_ratio = None if not old_cpu or r["cpu_s"] is None else r["cpu_s"] / old_cpu
        rows.append(
            (
                part,
                cell(r["to_listening_s"]),
                cell(imports.get("before_listening_s")),
                cell(r["first_answer_s"]),
                cell(r["step_s"]),
                cell(imports.get("during_first_answer_s")),
                cell(r["warm_answer_s"]),
                cell(r["total_s"]),
                cell(r["cpu_s"]),
                cell(old),
                "n/a" if ratio is None else f"{ratio:.2f}",
                cell(old_cpu),
                "n/a" if cpu_ratio is None else f"{cpu_ratio:.2f}",
            )
        )
    text_lines = upstream["text"]["up"].metadata.get("count")
    return Figure(
        key="cold_start_s",
        value=value,
        goals=[Goal("cold_start_s.*", "<=", GOAL_S, "s")],
        method=(
            "Each part started with the command line and env kpipe up gives it (python -m "
            "functions --target <part>, Triton warm); poll the port every 5 ms; POST a signed "
            "binary step.requested that makes it do its real work (resize 512->256, convert to "
            "PNG; detect_faces, blur_faces and detect_objects on the 512x512 astronaut; "
            "detect_text on scikit-image's scanned page; read_text on the page with the "
            f"{text_lines} lines detect_text found there; blur and annotate with the "
            "astronaut's face box upstream); time from Popen to the answer. Only a "
            "step.completed showing the work counts (a face found, lines found, strings read, "
            "a region blurred or drawn); any other answer is reported, not timed. Median of "
            f"{RUNS} starts per part (1 in quick mode), one part at a time. Imports: a separate "
            "start under -X importtime, top-level imports split at the moment the port listened. "
            "Beside it, taking turns with those starts (the same load), the same starts with "
            "functions-framework's ASGI app under uvicorn (kpipe up's command before; it imports "
            "Flask); ratio = kpipe up's / functions-framework's. CPU s: user + system CPU the "
            "process used to its first answer (/proc), which the machine's load does not inflate."
        ),
        details={"parts": lean, "functions_framework": before, "imports": profiles},
        obstacles=obstacles,
        tables=[
            Table(
                "Where a cold start goes, per part (seconds, medians)",
                (
                    "part",
                    "exec to listening",
                    "of it imports",
                    "listening to first answer",
                    "of it the step",
                    "of it imports",
                    "the same answer warm",
                    "total",
                    "CPU s",
                    "functions-framework total",
                    "ratio",
                    "functions-framework CPU s",
                    "CPU ratio",
                ),
                tuple(rows),
            )
        ],
    )
