"""Bad and odd input through the whole local stack (upload -> broker -> router -> part).

Every broken upload ends its run ``failed`` with an error code and a message
that names the object, with ``step.failed`` and ``run.failed`` through the
broker, the original untouched, every component still healthy and no retry.
Odd but valid images succeed and come out upright, first frame only.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack
from tests.reliability import _images
from tests.reliability._stack import (
    counters,
    healthy,
    one_step,
    wait_counters,
)

pytestmark = [pytest.mark.slow, pytest.mark.stack]

BAD = one_step("rel-bad", "bad/", {"id": "png", "function": "convert", "params": {"format": "png"}})
ODD = one_step("rel-odd", "odd/", {"id": "png", "function": "convert", "params": {"format": "png"}})


@pytest.fixture(scope="module")
def bad_pipeline(stack: Stack) -> Stack:
    stack.apply(BAD)
    return stack


@pytest.fixture(scope="module")
def odd_pipeline(stack: Stack) -> Stack:
    stack.apply(ODD)
    return stack


@pytest.mark.parametrize("case", sorted(_images.BROKEN))
def test_broken_input_fails_its_run_once_and_says_why(bad_pipeline: Stack, case: str) -> None:
    stack = bad_pipeline
    data, content_type, code = _images.BROKEN[case]()
    key = f"bad/{case}.{'png' if content_type == 'image/png' else 'jpg'}"
    before = counters(stack)
    stack.upload(key, data, content_type)
    run = stack.wait_run("rel-bad", key)

    assert run["status"] == "failed", run
    assert run["error"]["code"] == code
    assert run["error"]["step"] == "png"
    assert f"uploads/{key}" in run["error"]["message"]
    [step] = run["steps"]
    # step.failed reached the router: only that event marks a step failed
    assert step["status"] == "failed"
    assert step["error"]["code"] == code
    assert step["attempt"] == 1  # the part got the request once
    assert run["outputs"] == []
    # object.created in; step.requested, step.failed and run.failed replies; no retry
    change = wait_counters(stack, before, {"received": 4, "replies": 3})
    assert (change["received"], change["replies"], change["delivered"]) == (4, 3, 3), change
    assert change.get("retries", 0) == change.get("failed", 0) == 0, change
    assert stack.read("uploads", key) == data
    assert set(healthy(stack)["components"].values()) == {"ready"}


@pytest.mark.parametrize("case", sorted(_images.ODD))
def test_odd_but_valid_images_succeed_upright(odd_pipeline: Stack, case: str) -> None:
    stack = odd_pipeline
    extension, data = _images.ODD[case]()
    key = f"odd/{case}{extension}"
    stack.upload(key, data, "application/octet-stream")
    run = stack.wait_run("rel-odd", key)

    assert run["status"] == "succeeded", run
    assert run["outputs"] == [{"bucket": "processed", "key": f"rel-odd/odd/{case}.png"}]
    upright, seen = _images.is_upright_layout(stack.read("processed", run["outputs"][0]["key"]))
    assert upright, seen
    assert stack.read("uploads", key) == data
