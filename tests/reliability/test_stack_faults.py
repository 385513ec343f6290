"""Faults on the whole local stack: a part killed mid-step, duplicated bucket notifications.

Triton down, stopped or without a model: tests/reliability/test_triton_outage.py.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from eventing.notifications import notification_for
from kpipe.local.keys import ensure_webhook_token
from tests.e2e.conftest import Stack
from tests.reliability._images import noise_jpeg
from tests.reliability._stack import (
    broker_status,
    counters,
    delta,
    one_step,
    part_group,
    wait_counters,
    wait_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def test_a_part_killed_mid_step_is_redelivered_and_completes_once(stack: Stack) -> None:
    stack.apply(
        one_step(
            "rel-kill", "kill/", {"id": "small", "function": "resize", "params": {"width": 8}}
        ),
    )
    group = part_group(stack, "resize")
    before = counters(stack)
    os.killpg(group, signal.SIGSTOP)  # the delivery will hang inside the part
    try:
        stack.upload("kill/victim.jpg", noise_jpeg())
        deadline = time.monotonic() + 20
        while broker_status(stack)["triggers"]["part-resize"]["in_flight"] < 1:
            assert time.monotonic() < deadline, "the step request never reached the part"
            time.sleep(0.05)
    finally:
        os.killpg(group, signal.SIGKILL)  # mid-step: the broker sees the connection die
    run = stack.wait_run("rel-kill", "kill/victim.jpg", timeout_s=60)

    assert run["status"] == "succeeded", run
    [step] = run["steps"]
    assert step["attempt"] == 1  # the router asked once; the broker redelivered
    assert run["outputs"] == [{"bucket": "processed", "key": "rel-kill/kill/victim.jpg"}]
    assert stack.read("processed", "rel-kill/kill/victim.jpg")[:2] == b"\xff\xd8"
    assert delta(before, counters(stack))["retries"] >= 1
    wait_healthy(stack)  # the supervisor restarted the part


def test_duplicate_notifications_give_one_run_and_one_set_of_outputs(stack: Stack) -> None:
    stack.apply(
        one_step("rel-dup", "dup/", {"id": "small", "function": "resize", "params": {"width": 8}}),
    )
    data = noise_jpeg()
    etag = stack.upload("dup/twice.jpg", data)
    first = stack.wait_run("rel-dup", "dup/twice.jpg")
    assert first["status"] == "succeeded"
    before = counters(stack)
    # MinIO with a queue_dir delivers at least once: the same notification again, twice.
    body = notification_for("uploads", "dup/twice.jpg", len(data), etag, "image/jpeg")
    adapter = f"http://127.0.0.1:{stack.env['KPIPE_ADAPTER_PORT']}/"
    # MinIO sends its webhook token (`kpipe up` made it, in KPIPE_HOME/keys).
    token = ensure_webhook_token(stack.home)
    for _ in range(2):
        sent = httpx.post(
            adapter, json=body, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        assert sent.status_code == 200
    wait_counters(stack, before, {"delivered": 2})
    time.sleep(0.5)  # room for any (wrong) follow-up event
    change = delta(before, counters(stack))
    assert change["replies"] == 0, change  # no step was requested again

    [run] = stack.runs_of("rel-dup", "dup/twice.jpg")
    assert run["id"] == first["id"]
    assert run["steps"][0]["attempt"] == 1
    outputs = list(stack.minio().list_objects("processed", prefix="rel-dup/", recursive=True))
    assert [o.object_name for o in outputs] == ["rel-dup/dup/twice.jpg"]
