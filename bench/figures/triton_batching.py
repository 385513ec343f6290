"""Figure 5: ``triton_batching_gain`` -- detect_text throughput, 8 clients over 1.

Each client is its own :class:`functions.inference.TritonInferenceClient`
(HTTP, binary tensors) sending the tensor the ``detect_text`` part sends for
a 1080p photo: letterboxed into 960x960, ``[1, 3, 960, 960]`` float32. The
model's ``dynamic_batching`` (triton/models/text_detection/config.pbtxt)
may merge concurrent requests; Triton's statistics say how many it merged.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from bench.context import Context
from bench.model import Figure
from functions.inference import TritonInferenceClient
from functions.parts.text import INPUT, MODEL, OUTPUT, preprocess

# Eight clients queue behind each other on a CPU Triton: wait for the answer
# longer than a part would (a part's limit is a product setting, not measured here).
TIMEOUT_S = 300.0


def _stats(url: str) -> dict[str, Any]:
    """Triton's Prometheus counters for the model (its stats API needs a token PyTriton keeps).

    Requests, executions and compute time; zeros when the metrics port does not answer.
    """
    host, _, port = url.rpartition(":")
    try:
        text = httpx.get(f"http://{host}:{int(port) + 2}/metrics", timeout=10).text
    except httpx.HTTPError as exc:
        _NO_STATS.append(str(exc))
        text = ""
    wanted = {
        "nv_inference_count": "requests",
        "nv_inference_exec_count": "executions",
        "nv_inference_compute_infer_duration_us": "compute_infer_us",
    }
    found = dict.fromkeys(wanted.values(), 0)
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in wanted and f'model="{MODEL}"' in rest:
            found[wanted[name]] += int(float(line.rsplit(" ", 1)[1]))
    return found


_NO_STATS: list[str] = []


def _rate(url: str, tensor: np.ndarray[Any, Any], clients: int, each: int) -> dict[str, float]:
    """Requests per second with ``clients`` threads sending ``each`` requests, and the batching."""

    def client() -> None:
        with TritonInferenceClient(url, timeout_s=TIMEOUT_S) as triton:
            for _ in range(each):
                triton.infer(MODEL, {INPUT: tensor}, [OUTPUT])

    before = _stats(url)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    after = _stats(url)
    requests = max(1, after["requests"] - before["requests"])
    executions = max(1, after["executions"] - before["executions"])
    return {
        "requests_per_s": clients * each / wall,
        "mean_batch": requests / executions,
        # Triton adds a batch's compute time to each of its requests.
        "compute_ms_per_request": (after["compute_infer_us"] - before["compute_infer_us"])
        / requests
        / 1e3,
    }


def measure(ctx: Context) -> Figure:
    """One client, then eight, against the stack's Triton."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(ctx.photos[0][1])).convert("RGB"))
    tensor, _ = preprocess(pixels, 960)
    url = ctx.stack.triton_url
    with TritonInferenceClient(url, timeout_s=TIMEOUT_S) as triton:  # warm up: first run allocates
        triton.infer(MODEL, {INPUT: tensor}, [OUTPUT])
    each = 1 if ctx.quick else 3
    one = _rate(url, tensor, 1, 4 if ctx.quick else 12)
    eight = _rate(url, tensor, 8, each)
    gain = eight["requests_per_s"] / one["requests_per_s"]
    return Figure(
        key="triton_batching_gain",
        value=gain,
        goals=[],  # issue 6 sets no number for this figure
        method=(
            "text_detection on the stack's Triton, binary tensors over HTTP "
            "(TritonInferenceClient), input [1, 3, 960, 960] float32 from a 1080p photo as "
            f"detect_text sends it; 1 client x {4 if ctx.quick else 12} requests, then 8 "
            f"clients x {each}; gain = requests/s with 8 / requests/s with 1."
        ),
        details={"one_client": one, "eight_clients": eight, "stats_errors": _NO_STATS[:1]},
        obstacles=[
            f"Triton merged {eight['mean_batch']:.1f} requests per execution with 8 clients, "
            f"and each batched request spent {eight['compute_ms_per_request']:.0f} ms in compute "
            f"(its batch's time) against {one['compute_ms_per_request']:.0f} ms alone: on this "
            "CPU a batch costs at least the sum of its requests"
        ],
    )
