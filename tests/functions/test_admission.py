"""Back-pressure: a part runs only as many steps as it may, and a burst runs each step once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from minio import Minio
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Route

from eventing.contract import Event, EventType, ObjectRef, StepCall, StepRequest, run_prefix
from eventing.http import parse_cloudevent, to_http
from functions._asgi import target
from functions.catalog import Catalog
from functions.runtime import ProcessRuntime
from kpipe.local.broker import Broker, BrokerConfig, DeliverySpec, Trigger
from kpipe.local.broker.queue import DeliveryQueue
from tests.conftest import BUCKET, OUTPUT_BUCKET
from tests.functions import _slow_part
from tests.functions.conftest import CONTEXT, PARTS_KEY, PIPELINE, ROUTER_KEY

CONCURRENCY = 2


@pytest.fixture
def part_url(
    serve: Callable[..., str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The slow part behind HTTP, allowed CONCURRENCY steps at once."""
    for name, value in {
        "MINIO_ENDPOINT": s3_endpoint,
        "MINIO_ACCESS_KEY": "test",
        "MINIO_SECRET_KEY": "test",
        "KPIPE_SIGNING_KEY": PARTS_KEY.entry(),
        "KPIPE_TRUSTED_KEYS": f"router={ROUTER_KEY.public_entry()}",
        "KPIPE_PART_CONCURRENCY": str(CONCURRENCY),
    }.items():
        monkeypatch.setenv(name, value)
    _slow_part.RUNS.clear()
    runtime = ProcessRuntime(Catalog({"slow": "tests.functions._slow_part"}))
    app = Starlette(routes=[Route("/", target("slow", runtime), methods=["GET", "POST"])])
    yield serve(app)
    runtime.close()


def _requests(raw_s3: Minio, count: int) -> list[tuple[dict[str, str], bytes]]:
    """``count`` signed step requests for ``slow``, each on its own source."""
    out = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(out, "PNG")
    requests = []
    for n in range(count):
        source = ObjectRef(BUCKET, f"burst/{n}.png")
        raw_s3.put_object(BUCKET, source.key, io.BytesIO(out.getvalue()), len(out.getvalue()))
        request = StepRequest(
            source=source,
            inputs=(source,),
            calls=(StepCall("s0", "slow", {}),),
            output=ObjectRef(OUTPUT_BUCKET, f"{run_prefix(PIPELINE, 'r1')}{n}.png"),
        )
        context = CONTEXT.for_step("s0", "slow")
        event = Event(EventType.STEP_REQUESTED, "/kpipe/router", request.to_data(), context)
        requests.append(to_http(ROUTER_KEY.sign(event)))
    return requests


def test_beyond_its_concurrency_a_part_answers_429_and_runs_nothing(
    part_url: str, raw_s3: Minio
) -> None:
    requests = _requests(raw_s3, 5)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            posts = [client.post(part_url, headers=h, content=b) for h, b in requests]
            return list(await asyncio.gather(*posts))

    answers = asyncio.run(burst())
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * CONCURRENCY + [429] * (5 - CONCURRENCY)
    busy = next(a for a in answers if a.status_code == 429)
    assert busy.json()["error"]["code"] == "part_busy"
    assert busy.headers["retry-after"] == "1"
    assert len(_slow_part.RUNS) == CONCURRENCY  # a refused delivery ran nothing


def test_a_burst_ten_times_the_parts_concurrency_runs_every_step_once(
    part_url: str, raw_s3: Minio, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    # The broker's timeout is shorter than the burst takes: a delivery queued
    # inside the part would time out and be sent again while it still ran.
    count = 10 * CONCURRENCY
    dead = subscriber((202, b"", {}))
    delivery = DeliverySpec(
        retry=3,
        backoff_policy="exponential",
        backoff_delay_s=0.2,
        timeout_s=2 * _slow_part.HOLD_S,
        dead_letter_sink=dead.url,
    )
    part = Trigger(
        "part-slow", part_url, {"type": EventType.STEP_REQUESTED.value}, concurrency=CONCURRENCY
    )
    queue = tmp_path / "broker.db"

    async def run() -> None:
        async with Broker(BrokerConfig((part,), delivery), queue_path=queue) as broker:
            for headers, body in _requests(raw_s3, count):
                broker.ingest(parse_cloudevent(headers, body))
            while DeliveryQueue(queue).rows():
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert sorted(_slow_part.RUNS) == sorted(f"burst/{n}.png" for n in range(count))
    assert dead.count == 0
