"""The local broker keeps what it accepted: across stops, crashes (SIGKILL) and retries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.http import CloudEvent

from eventing.contract import ObjectCreated
from eventing.http import parse_cloudevent, to_http
from kpipe.local.broker import Broker, BrokerConfig, DeliverySpec, Trigger, write_config
from kpipe.local.broker.app import create_broker_app
from kpipe.local.broker.delivery import Outcome
from kpipe.local.broker.queue import DeliveryQueue

CREATED = {"type": "io.kpipe.object.created"}
FAST = DeliverySpec(retry=3, backoff_policy="exponential", backoff_delay_s=0.02, timeout_s=5)


def _event(key: str = "a.jpg") -> tuple[dict[str, str], bytes]:
    return to_http(ObjectCreated("uploads", key, 1, key).to_event("/kpipe/s3/uploads"))


def _keys(received: list[Any]) -> list[str]:
    return [r.headers["ce-subject"].removeprefix("uploads/") for r in received]


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


async def _accept_then_stop(config: BrokerConfig, queue: Path) -> None:
    async with Broker(config, queue_path=queue) as broker:
        headers, body = _event()
        broker.ingest(parse_cloudevent(headers, body))


async def _run_until_empty(config: BrokerConfig, queue: Path) -> None:
    async with Broker(config, queue_path=queue):
        while DeliveryQueue(queue).rows():
            await asyncio.sleep(0.01)


def test_an_accepted_event_is_delivered_after_a_restart(
    subscriber: Callable[..., Any], free_port: Callable[[], int], queue_file: Path
) -> None:
    port = free_port()
    config = BrokerConfig(
        (Trigger("router", f"http://127.0.0.1:{port}/", CREATED),),
        DeliverySpec(retry=20).over(FAST),
    )
    asyncio.run(_accept_then_stop(config, queue_file))  # the subscriber is down meanwhile
    assert [(r.trigger, r.hops) for r in DeliveryQueue(queue_file).rows()] == [("router", 255)]
    router = subscriber((202, b"", {}), port=port)
    asyncio.run(_run_until_empty(config, queue_file))
    assert _keys(router.received) == ["a.jpg"]


@pytest.fixture
def broker_process(
    tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[[str], tuple[str, subprocess.Popen[bytes]]]]:
    """``python -m kpipe.local.broker`` with a durable queue, for a subscriber URL."""
    processes: list[subprocess.Popen[bytes]] = []
    port = free_port()

    def start(subscriber_url: str) -> tuple[str, subprocess.Popen[bytes]]:
        config = tmp_path / "triggers.yaml"
        # Slow retries: what it accepted is still queued when it is killed.
        patient = DeliverySpec(retry=10, backoff_policy="linear", backoff_delay_s=1.0)
        write_config(config, [Trigger("router", subscriber_url, CREATED)], patient.over(FAST))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kpipe.local.broker",
                "--port",
                str(port),
                "--config",
                str(config),
                "--queue",
                str(tmp_path / "broker.db"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url, process
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the broker did not start")

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_events_accepted_before_a_sigkill_are_delivered_after_it(
    broker_process: Callable[[str], tuple[str, subprocess.Popen[bytes]]],
    subscriber: Callable[..., Any],
    free_port: Callable[[], int],
    http: httpx.Client,
    wait_for: Callable[..., None],
) -> None:
    port = free_port()
    url, process = broker_process(f"http://127.0.0.1:{port}/")
    keys = [f"k{i}.jpg" for i in range(20)]
    for key in keys:
        headers, body = _event(key)
        assert http.post(url, headers=headers, content=body).status_code == 202
    os.kill(process.pid, signal.SIGKILL)  # nothing could be delivered: the subscriber is down
    process.wait()
    router = subscriber((202, b"", {}), port=port)
    broker_process(router.url)
    wait_for(lambda: router.count >= len(keys))
    assert sorted(set(_keys(router.received))) == sorted(keys)


async def _fail_twice_then_restart(config: BrokerConfig, queue: Path) -> None:
    async with Broker(config, queue_path=queue) as first:
        headers, body = _event()
        first.ingest(parse_cloudevent(headers, body))
        while not any(r.attempts >= 2 for r in DeliveryQueue(queue).rows()):
            await asyncio.sleep(0.01)
    await _run_until_empty(config, queue)


def test_spent_attempts_count_after_a_restart_then_the_dead_letter_sink_gets_it(
    subscriber: Callable[..., Any], queue_file: Path
) -> None:
    failing = subscriber((503, b"busy", {}))
    dead = subscriber((202, b"", {}))
    spec = DeliverySpec(
        retry=3, backoff_policy="linear", backoff_delay_s=0.05, dead_letter_sink=dead.url
    )
    config = BrokerConfig((Trigger("router", failing.url, CREATED),), spec.over(FAST))
    asyncio.run(_fail_twice_then_restart(config, queue_file))
    # The first attempt and 3 retries in all, across the restart; then the dead letter.
    assert failing.count == 4
    assert dead.count == 1
    assert dead.received[0].headers["ce-knativeerrorcode"] == "503"


def test_a_retry_waits_without_holding_a_worker(
    serve: Callable[..., str],
    subscriber: Callable[..., Any],
    http: httpx.Client,
    wait_for: Callable[..., None],
) -> None:
    slow = subscriber((503, b"", {}), (202, b"", {}))
    spec = DeliverySpec(retry=1, backoff_policy="linear", backoff_delay_s=2.0)
    config = BrokerConfig((Trigger("router", slow.url, CREATED),), spec.over(FAST))
    url = serve(create_broker_app(config, concurrency=1))
    http.post(url, headers=_event("first.jpg")[0], content=_event("first.jpg")[1])
    wait_for(lambda: slow.count == 1)
    http.post(url, headers=_event("second.jpg")[0], content=_event("second.jpg")[1])
    # The one worker delivers the second event while the first waits for its retry.
    wait_for(lambda: slow.count == 2, timeout_s=1.5)
    assert _keys(slow.received) == ["first.jpg", "second.jpg"]
    wait_for(lambda: slow.count == 3)


async def _in_process(queue: str) -> tuple[list[str], dict[str, int]]:
    seen: list[str] = []

    async def router(ce: CloudEvent) -> Outcome:
        seen.append(str(ce["type"]))
        if ce["type"] == "io.kpipe.object.created":
            reply = CloudEvent({"type": "done", "source": "/router", "id": "r1"}, {"ok": 1})
            return Outcome(True, 200, reply=reply)
        return Outcome(True, 202)

    config = BrokerConfig(
        (
            Trigger("router", "local://router", CREATED),
            Trigger("done", "local://router", {"type": "done"}),
        ),
        FAST,
    )
    async with Broker(config, queue_path=queue, local={"local://router": router}) as broker:
        headers, body = _event()
        broker.ingest(parse_cloudevent(headers, body))
        # The broker counts a delivery once the subscriber has returned: wait for both.
        for _ in range(500):
            if len(seen) == 2 and broker.counters["delivered"] == 2:
                break
            await asyncio.sleep(0.01)
        return seen, dict(broker.counters)


def test_an_in_process_subscriber_is_called_and_its_reply_routed(tmp_path: Path) -> None:
    seen, counters = asyncio.run(_in_process(str(tmp_path / "q.db")))
    assert seen == ["io.kpipe.object.created", "done"]
    assert (counters["delivered"], counters["replies"]) == (2, 1)
    assert DeliveryQueue(tmp_path / "q.db").rows() == []


# A broker whose in-process subscriber kills the whole process (a poison
# event, as the router's process dies on it): argv is the queue file, the
# dead-letter sink and whether to ingest the event first.
_POISONED = """
import asyncio, os, signal, sys
from kpipe.local.broker import Broker, BrokerConfig, DeliverySpec, Trigger
from kpipe.local.broker.queue import DeliveryQueue
from eventing.contract import ObjectCreated
from eventing.http import parse_cloudevent, to_http

async def kill(ce):
    os.kill(os.getpid(), signal.SIGKILL)

async def main(queue, dead, ingest):
    spec = DeliverySpec(retry=2, backoff_policy="linear", backoff_delay_s=0.01,
                        timeout_s=5, dead_letter_sink=dead)
    created = {"type": "io.kpipe.object.created"}
    config = BrokerConfig((Trigger("router", "local://router", created),), spec)
    async with Broker(config, queue_path=queue, local={"local://router": kill}) as broker:
        if ingest:
            event = ObjectCreated("uploads", "poison.jpg", 1, "e").to_event("/kpipe/s3/uploads")
            broker.ingest(parse_cloudevent(*to_http(event)))
        while DeliveryQueue(queue).rows():
            await asyncio.sleep(0.01)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
"""


def test_a_poison_event_that_kills_the_process_reaches_the_dead_letter_sink(
    subscriber: Callable[..., Any], queue_file: Path
) -> None:
    dead = subscriber((202, b"", {}))
    kills = 0
    for start in range(8):
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                _POISONED,
                str(queue_file),
                dead.url,
                "1" if start == 0 else "0",
            ],
            timeout=60,
            capture_output=True,
            check=False,
        )
        if process.returncode != -signal.SIGKILL:
            assert process.returncode == 0, process.stderr.decode()
            break
        kills += 1
    # The first attempt and its 2 retries each killed the process; the next
    # start counted them and sent the event to the dead-letter sink instead.
    assert kills == 3
    assert dead.count == 1
    assert dead.received[0].headers["ce-subject"] == "uploads/poison.jpg"
    assert DeliveryQueue(queue_file).rows() == []
