"""The kpipe CLI against the real local stack, as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import encode
from tests.e2e.conftest import REPO, Stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def kpipe(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "KPIPE_API_URL": stack.api, "MINIO_ENDPOINT": stack.s3_endpoint}
    return subprocess.run(
        [sys.executable, "-m", "kpipe.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apply_run_runs_and_backfill(
    stack: Stack, tmp_path: Path, astronaut: npt.NDArray[np.uint8], cat: npt.NDArray[np.uint8]
) -> None:
    spec = tmp_path / "thumbs.yaml"
    spec.write_text(
        "name: thumbs\n"
        "trigger: {bucket: uploads, prefix: thumbs/, suffix: .jpg}\n"
        "output: {bucket: processed}\n"
        "steps:\n"
        "  - {id: small, function: resize, params: {max_side: 128}}\n"
    )
    applied = kpipe(stack, "apply", "-f", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert "pipeline thumbs version 1 applied" in applied.stdout
    photos = []
    for name, pixels in (("astronaut.jpg", astronaut), ("cat.jpg", cat)):
        path = tmp_path / name
        path.write_bytes(encode(pixels))
        photos.append(str(path))
    ran = kpipe(stack, "run", "thumbs", *photos)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "uploads/thumbs/astronaut.jpg -> processed/thumbs/thumbs/astronaut.jpg" in ran.stdout
    assert "uploads/thumbs/cat.jpg -> processed/thumbs/thumbs/cat.jpg" in ran.stdout
    assert "running thumbs" in ran.stderr  # the progress bar
    listed = kpipe(stack, "runs", "--pipeline", "thumbs")
    assert listed.returncode == 0
    assert listed.stdout.count("succeeded") == 2
    # a second version over the same objects: backfill runs it once per object
    spec.write_text(spec.read_text().replace("128", "64"))
    assert kpipe(stack, "apply", "-f", str(spec)).returncode == 0
    filled = kpipe(stack, "backfill", "thumbs", "--concurrency", "1")
    assert filled.returncode == 0, filled.stdout + filled.stderr
    assert "2 objects: 2 succeeded, 0 failed" in filled.stdout


def test_a_bad_spec_is_refused_with_the_field(stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\ntrigger: {bucket: uploads}\noutput: {bucket: processed}\n"
        "steps:\n  - {id: a, function: sharpen}\n"
    )
    result = kpipe(stack, "apply", "-f", str(spec))
    assert result.returncode == 1
    assert "steps[0].function: unknown function 'sharpen'" in result.stderr
