"""Nothing lost when the machine dies: SIGKILL every process of the stack mid-burst.

A burst of uploads runs through a three-step pipeline; part-way through,
every process of ``kpipe up`` (the supervisor, the router with its broker,
the S3 front and rclone, the adapter, Triton, the parts) is killed at once
with SIGKILL, as a power cut would stop them (but for the page cache). Then
``kpipe up`` starts again on the same ``KPIPE_HOME``. Every upload that was
acknowledged must still be there and end with exactly one succeeded run and
readable outputs, and every output written before the crash must still be
there, unchanged.

Nothing may be recovered by the safety nets: the reconciler is off and the
re-drive waits its default (minutes), so every run must go on from what was
committed (the broker's queue, the notifier's, the router's outbox) and
finish within seconds of the restart.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from minio import Minio

from tests.conftest import encode, wait_until
from tests.e2e.conftest import Stack, free_block, ports_at, start_stack, stop_stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]

PIPELINE = {
    "name": "crash",
    "trigger": {"bucket": "uploads", "prefix": "crash/", "suffix": ".png"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "small", "function": "resize", "params": {"max_side": 48}},
        {"id": "jpeg", "function": "convert", "after": ["small"], "params": {"format": "jpeg"}},
        {"id": "png", "function": "convert", "after": ["jpeg"], "params": {"format": "png"}},
    ],
}
UPLOADS = 120
# Paced, so that the crash comes in the middle of the burst.
PAUSE_S = 0.05
# No reconciler; the re-drive keeps its default, far beyond FINISH_S.
RECOVERY_ENV = {"KPIPE_RECONCILE_INTERVAL_S": "0"}
# How long after the restart every acknowledged upload's run must have ended.
FINISH_S = 60.0


def _png(i: int) -> bytes:
    import numpy as np

    pixels = np.full((64, 96, 3), (i * 4 % 256, 80, 160), dtype=np.uint8)
    pixels[: 1 + i % 60, : 1 + i % 90] = 255  # each image different
    return encode(pixels, "PNG")


class Uploader(threading.Thread):
    """Uploads one image after another, noting each the store acknowledged."""

    def __init__(self, client: Minio) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.acknowledged: dict[str, str] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        for i in range(UPLOADS):
            if self.stop.is_set():
                return
            key = f"crash/{i:03d}.png"
            data = _png(i)
            try:
                result = self.client.put_object(
                    "uploads", key, io.BytesIO(data), len(data), content_type="image/png"
                )
            except Exception:  # the stack died under this upload: not acknowledged
                return
            self.acknowledged[key] = str(result.etag)
            self.stop.wait(PAUSE_S)


def _kill_everything(stack: Stack) -> int:
    """SIGKILL the supervisor and every process under it, all at once."""
    root = psutil.Process(stack.process.pid)
    victims = [root, *root.children(recursive=True)]
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(victims, timeout=10)
    stack.process.wait()
    return len(victims)


def _outputs_on_disk(home: Path) -> dict[Path, bytes]:
    root = home / "s3" / "objects" / "processed" / "crash"
    if not root.is_dir():
        return {}
    # rclone writes each object under a temporary name first: those are not outputs yet.
    return {
        p: p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".rclone")
    }


def _counter(metrics: str, name: str) -> float:
    """The sum of a Prometheus counter over its labels (0 when it has none yet)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "kpipe-home"


def test_a_sigkill_of_every_process_mid_burst_loses_nothing(home: Path) -> None:
    home.mkdir()
    ports = ports_at(free_block(20))
    stack = start_stack(home, ports, env=RECOVERY_ENV)
    try:
        stack.apply(PIPELINE)
        uploader = Uploader(stack.minio())
        uploader.start()
        # Kill once some uploads are acknowledged and some runs have written outputs.
        wait_until(lambda: len(uploader.acknowledged) >= UPLOADS // 3, timeout_s=120)
        wait_until(lambda: len(_outputs_on_disk(home)) >= 3, timeout_s=120)
        before = _outputs_on_disk(home)
        killed = _kill_everything(stack)
    except BaseException:
        stop_stack(stack)
        raise
    uploader.stop.set()
    uploader.join(30)
    acknowledged = dict(uploader.acknowledged)
    assert killed >= 12, "expected the supervisor, router, S3 front, rclone, Triton and parts"
    assert len(acknowledged) < UPLOADS, "the burst was over before the crash"

    again = start_stack(home, ports, env=RECOVERY_ENV)
    try:
        # Every acknowledged upload is still there, with the bytes that were sent.
        for key, etag in acknowledged.items():
            stat = again.minio().stat_object("uploads", key)
            assert stat.etag == etag, key
        # ... and ends with exactly one succeeded run, whose outputs are readable.
        deadline = time.monotonic() + FINISH_S
        for key in sorted(acknowledged):
            runs = []
            while time.monotonic() < deadline:
                runs = again.runs_of("crash", key)
                if runs and runs[0]["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
            assert len(runs) == 1, (key, runs)
            (run,) = runs
            assert run["status"] == "succeeded", (key, run.get("error"), again.logs())
            for output in run["outputs"]:
                data = again.read(output["bucket"], output["key"])
                assert data.startswith(b"\x89PNG"), output
        # Outputs written before the crash are still there, unchanged.
        after = _outputs_on_disk(home)
        for path, data in before.items():
            assert after.get(path) == data, path
        # ... and no safety net did the work.
        metrics = httpx.get(f"{again.api}/metrics", timeout=10).text
        assert _counter(metrics, "kpipe_runs_reconciled_total") == 0
    finally:
        stop_stack(again)
