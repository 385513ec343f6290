"""A lost notification through the whole local stack: the reconciler finds the upload.

Locally only `uploads` sends MinIO's webhook (as the cluster's `mc event
add` does), so an upload to `processed` is an upload whose notification
never came: exactly what a lost `object.created` looks like to the router.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from minio import Minio
from PIL import Image

from tests.conftest import encode
from tests.e2e.conftest import free_block, ports_at, start_stack, stop_stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]

FOUND_AGAIN = {
    "name": "found-again",
    "trigger": {"bucket": "uploads", "prefix": "lost/"},
    "output": {"bucket": "processed"},
    "steps": [{"id": "small", "function": "resize", "params": {"max_side": 64}}],
}


def test_an_upload_whose_notification_never_came_still_gets_one_run(
    tmp_path: Path, astronaut: npt.NDArray[np.uint8]
) -> None:
    # reconcile every sweep (2 s in tests), once an upload is 2 s old
    ports = ports_at(free_block(20))
    stack = start_stack(
        tmp_path,
        ports,
        env={"KPIPE_RECONCILE_INTERVAL_S": "1", "KPIPE_RECONCILE_GRACE_S": "2"},
    )
    try:
        stack.apply(FOUND_AGAIN)
        data = encode(astronaut)
        # Straight to the S3 server's backend, past the front that notifies:
        # the upload is stored, its notification never sent.
        backend = Minio(
            f"127.0.0.1:{ports['s3_backend']}", "minioadmin", "minioadmin", secure=False
        )
        backend.put_object(
            "uploads", "lost/astronaut.jpg", io.BytesIO(data), len(data), "image/jpeg"
        )

        run = stack.wait_run("found-again", "lost/astronaut.jpg")
        assert run["status"] == "succeeded", run
        [output] = run["outputs"]
        assert output["key"] == "found-again/lost/astronaut.jpg"
        assert max(Image.open(io.BytesIO(stack.read("processed", output["key"]))).size) == 64
        with stack.client() as api:
            metrics = api.get("/metrics").text
        assert 'kpipe_runs_reconciled_total{pipeline="found-again"} 1.0' in metrics

        time.sleep(5)  # later reconciliations see its run and start nothing more
        assert len(stack.runs_of("found-again", "lost/astronaut.jpg")) == 1
    finally:
        stop_stack(stack)
