"""The minio-setup Job's script, run by a real ``sh`` against a recording stand-in for ``mc``.

No MinIO server exists here (its community server is source-only), so the
stand-in checks what the script asks of ``mc``: that every role gets its user
and exactly its policy file, and that running the Job again (every apply after
the TTL) is not an error. The stand-in answers a repeated ``policy attach`` as
``mc`` does: exit 1, "The specified policy change is already in effect."
(minio/mc issue 4863).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kpipe.deploy.render import KNATIVE_DIR, overlay_dir, render

ROLES = ("parts", "router", "api", "triton")

# The stand-in: logs each call, keeps attachments as marker files, and fails on request.
FAKE_MC = r"""#!/bin/sh
printf '%s\n' "$*" >> "$MC_LOG"
case "$1 $2 $3" in
  "admin policy create")
    test -f "$POLICY_DIR/${6#/policies/}" || { echo "mc: no such file $6" >&2; exit 1; } ;;
  "admin policy attach")
    if [ -n "$MC_FAIL_ATTACH" ]; then echo "mc: <ERROR> $MC_FAIL_ATTACH" >&2; exit 1; fi
    marker="$MC_STATE/$5-$7"
    if [ -e "$marker" ]; then
      echo "mc: <ERROR> Unable to attach. The specified policy change is already in effect." >&2
      exit 1
    fi
    touch "$marker" ;;
  "event add "*) [ -z "$MC_NO_WEBHOOK" ] || exit 1 ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Run:
    returncode: int
    calls: list[str]
    stderr: str


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    return next(
        o
        for o in render(overlay_dir("dev"))
        if o["kind"] == "Job" and o["metadata"]["name"] == "minio-setup"
    )


@pytest.fixture
def run_job(job: dict[str, Any], tmp_path: Path) -> Any:
    sh = shutil.which("sh")
    if sh is None:
        pytest.fail("a POSIX sh is needed to run the minio-setup script")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:1] == ["/bin/sh"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "mc.log"
    # What the Secrets would give the Job's env.
    secrets = {f"{r.upper()}_ACCESS_KEY": f"kpipe-{r}" for r in ROLES}
    secrets |= {f"{r.upper()}_SECRET_KEY": f"{r}-secret-0123456789" for r in ROLES}

    def run(**extra: str) -> Run:
        log.write_text("")
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "MC_LOG": str(log),
            "MC_STATE": str(state),
            "POLICY_DIR": str(KNATIVE_DIR / "base" / "minio-policies"),
            **secrets,
            **extra,
        }
        done = subprocess.run(
            [sh, *container["command"][1:], container["args"][0]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(done.returncode, log.read_text().splitlines(), done.stderr)

    return run


def test_every_role_gets_its_user_and_exactly_its_policy(run_job: Any) -> None:
    done = run_job()
    assert done.returncode == 0, done.stderr
    for role in ROLES:
        assert f"admin policy create local kpipe-{role} /policies/{role}.json" in done.calls
        assert f"admin user add local kpipe-{role} {role}-secret-0123456789" in done.calls
        assert f"admin policy attach local kpipe-{role} --user kpipe-{role}" in done.calls
    assert done.calls[:2] == [
        "ready local",
        "mb --ignore-existing local/uploads local/processed local/models",
    ]
    # The buckets and users exist before the webhook is subscribed.
    assert done.calls[-2].startswith("event add local/uploads arn:minio:sqs::KPIPE:webhook")


def test_running_the_job_again_is_not_an_error(run_job: Any) -> None:
    assert run_job().returncode == 0
    again = run_job()
    assert again.returncode == 0, again.stderr
    assert "already in effect" not in again.stderr


def test_any_other_attach_failure_fails_the_job(run_job: Any) -> None:
    done = run_job(MC_FAIL_ATTACH="The canned policy does not exist.")
    assert done.returncode != 0
    assert "The canned policy does not exist." in done.stderr
    assert not any(c.startswith("event add") for c in done.calls)


def test_a_missing_webhook_target_fails_the_job(run_job: Any) -> None:
    done = run_job(MC_NO_WEBHOOK="1")
    assert done.returncode == 1
    assert "MinIO has no KPIPE webhook target" in done.stderr


def test_the_job_never_prints_a_secret(run_job: Any) -> None:
    done = run_job()
    assert "secret-0123456789" not in done.stderr
