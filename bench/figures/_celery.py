"""The Celery peer at work: its Redis, a real worker process, and chains driven through it.

:func:`redis_problem` says why the peer cannot be measured (a user's machine
has no Redis); :func:`celery_worker` starts ``celery -A bench.peer worker``
(prefork, one child per CPU) on a queue of its own and stops it with a warm
shutdown; :func:`run_chain` and :func:`run_open` drive chains of the peer's
step as the kpipe figures drive runs.

Example:
    >>> with celery_worker(settings, work, concurrency=2) as worker:  # doctest: +SKIP
    ...     start, end = run_chain(worker.client(), "src.png", "peer/c0", 10)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery, chain, signature
from celery.result import AsyncResult

from bench._procs import Usage, descendants, usage
from bench.peer import STEP_TASK, PeerSettings, create_app
from kpipe.local.config import REPO

START_TIMEOUT_S = 120.0
CHAIN_TIMEOUT_S = 120.0


def redis_problem(url: str, timeout_s: float = 2.0) -> str | None:
    """Why the peer's Redis at ``url`` cannot be used, or None when it answers PING."""
    try:
        with redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        ) as r:
            r.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {url} did not answer PING: {type(exc).__name__}: {exc}"
    return None


def redis_pid(url: str) -> int | None:
    """The process id of the Redis server at ``url`` (from INFO), to read its CPU."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2.0) as r:
            pid = r.info("server").get("process_id")
    except (redis.RedisError, OSError):
        return None
    return int(pid) if pid is not None else None


def chain_keys(prefix: str, steps: int) -> list[str]:
    """The output key of each step of one chain, under ``prefix``."""
    return [f"{prefix}/s{i}.png" for i in range(steps)]


def make_chain(app: Celery, source_key: str, prefix: str, steps: int) -> chain:
    """``steps`` peer steps in a line: each reads the previous step's output."""
    keys = chain_keys(prefix, steps)
    first = signature(STEP_TASK, args=(source_key, keys[0]), app=app)
    rest = [signature(STEP_TASK, args=(key,), app=app) for key in keys[1:]]
    return chain(first, *rest)


def _done_at(result: AsyncResult) -> float:
    """When the backend stored the result of the chain's last task (seconds since the epoch)."""
    done = result.date_done
    if done is None:
        raise RuntimeError(f"task {result.id} has no date_done")
    if done.tzinfo is None:
        raise RuntimeError(f"task {result.id}: date_done {done} has no time zone")
    return float(done.timestamp())


def run_chain(app: Celery, source_key: str, prefix: str, steps: int) -> tuple[float, float]:
    """Run one chain and wait for it; (submitted, its last result stored).

    Raises:
        celery.exceptions.TimeoutError: it did not finish in time.
        Exception: whatever a step raised (Celery re-raises it here).
    """
    submitted = time.time()
    result = make_chain(app, source_key, prefix, steps).apply_async()
    result.get(timeout=CHAIN_TIMEOUT_S)
    return submitted, _done_at(result)


def run_open(
    settings: PeerSettings, source_key: str, prefixes: Sequence[str], steps: int, clients: int
) -> list[tuple[float, float]]:
    """Chains for ``prefixes``, submitted by ``clients`` threads back to back, then awaited.

    Each client thread has its own Celery app (its own connections), submits
    its share without waiting, then waits for its chains; (submitted, done) per chain.
    """
    queue = iter(prefixes)
    lock = threading.Lock()
    chains: list[tuple[float, float]] = []

    def client() -> None:
        app = create_app(settings)
        mine: list[tuple[float, AsyncResult]] = []
        while True:
            with lock:
                prefix = next(queue, None)
            if prefix is None:
                break
            submitted = time.time()
            mine.append((submitted, make_chain(app, source_key, prefix, steps).apply_async()))
        done = []
        for submitted, result in mine:
            result.get(timeout=CHAIN_TIMEOUT_S)
            done.append((submitted, _done_at(result)))
        with lock:
            chains.extend(done)
        app.close()

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return chains


@dataclass
class Worker:
    """A running Celery worker process of the peer."""

    settings: PeerSettings
    process: subprocess.Popen[bytes]
    log: Path
    concurrency: int

    def client(self) -> Celery:
        """A client app of this worker's Redis and queue (close it when done)."""
        return create_app(self.settings)

    def usage(self) -> Usage:
        """CPU and run-queue wait of the worker and its pool's children so far."""
        total = Usage()
        for pid in descendants(self.process.pid):
            total += usage(pid)
        return total

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextmanager
def celery_worker(settings: PeerSettings, work: Path, concurrency: int) -> Iterator[Worker]:
    """Start ``celery -A bench.peer worker`` and wait until it runs a chain; stop it after.

    Raises:
        RuntimeError: the worker exited, or ran no chain within ``START_TIMEOUT_S``.
    """
    log = work / f"celery-{settings.queue}.log"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peer",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--queues",
        settings.queue,
        "--hostname",
        f"{settings.queue}@%h",
        # Stay out of other apps' workers on a shared Redis (no broadcasts to them).
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, **settings.env()},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(settings, process, log, concurrency)
    try:
        yield worker
    finally:
        _stop(process)
        forget_queue(settings)


def forget_queue(settings: PeerSettings) -> None:
    """Delete the keys the queue left in Redis (results expire on their own)."""
    queue = settings.queue
    try:
        with redis.Redis.from_url(settings.redis_url, socket_timeout=2.0) as r:
            r.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    except (redis.RedisError, OSError):
        pass  # a Redis gone by now has nothing left to clean


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM), then kill the worker's own process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_ready(worker: Worker, source_key: str, prefix: str, steps: int) -> None:
    """Run one chain through a fresh worker (its children import and connect meanwhile).

    Raises:
        RuntimeError: the worker exited, or the chain did not finish in time.
    """
    app = worker.client()
    try:
        result = make_chain(app, source_key, prefix, steps).apply_async()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not result.ready():
            if worker.process.poll() is not None:
                code = worker.process.returncode
                raise RuntimeError(f"the Celery worker exited with {code}\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker ran no chain in {START_TIMEOUT_S} s")
            time.sleep(0.05)
        result.get(timeout=CHAIN_TIMEOUT_S)
    finally:
        app.close()
