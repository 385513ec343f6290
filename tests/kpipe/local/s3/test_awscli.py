"""The AWS CLI against the store: cp of 20 MiB up, down and across, and sync that loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kpipe.local.s3.server import S3Server
from tests.kpipe.local.s3.conftest import KEYS, MIB, QUIET

pytestmark = pytest.mark.slow

BIG = os.urandom(20 * MIB)
# Folders beside names that sort below "/": listed out of order, sync --delete deleted them.
TREE = {"a/1.jpg": b"1", "a/2/3.jpg": b"3", "a-b/4.jpg": b"4", "a.txt": b"t", "a0": b"0"}


@pytest.fixture
def aws(store: S3Server, tmp_path: Path) -> Any:
    """``aws(*args)``: the CLI's ``s3`` commands on the store; returns their stdout."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEYS[0],
        "AWS_SECRET_ACCESS_KEY": KEYS[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "awscli", "--endpoint-url", f"http://{store.endpoint}", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_cp_of_20_mib_up_down_and_across(aws: Any, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(BIG)
    aws("s3", "cp", str(tmp_path / "big.bin"), f"s3://{QUIET}/big.bin")
    aws("s3", "cp", f"s3://{QUIET}/big.bin", f"s3://{QUIET}/copy.bin")
    aws("s3", "cp", f"s3://{QUIET}/copy.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == BIG


def test_sync_delete_up_deletes_nothing_that_exists_locally(aws: Any, tmp_path: Path) -> None:
    local = tmp_path / "local"
    _write(local, TREE)
    aws("s3", "sync", str(local), f"s3://{QUIET}/tree")
    # A second sync finds nothing to do: the listing is in the order the CLI compares in.
    assert aws("s3", "sync", "--delete", str(local), f"s3://{QUIET}/tree").strip() == ""
    listed = aws("s3", "ls", "--recursive", f"s3://{QUIET}/tree/")
    assert sorted(line.split()[-1] for line in listed.splitlines()) == sorted(
        f"tree/{k}" for k in TREE
    )


def test_sync_delete_down_deletes_nothing_that_exists_remotely(aws: Any, tmp_path: Path) -> None:
    _write(tmp_path / "up", TREE)
    aws("s3", "sync", str(tmp_path / "up"), f"s3://{QUIET}/tree")
    down = tmp_path / "down"
    aws("s3", "sync", "--delete", f"s3://{QUIET}/tree", str(down))
    assert aws("s3", "sync", "--delete", f"s3://{QUIET}/tree", str(down)).strip() == ""
    assert _tree(down) == TREE
