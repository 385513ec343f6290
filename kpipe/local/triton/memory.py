"""What the local Triton holds in memory, per process and per model, from /proc.

The launcher's tree is ``tritonserver`` and one python backend stub per
model instance (the stub runs that model's onnxruntime session). A page that
several processes map (the stubs' shared libraries, the shared memory
between Triton and a stub) counts in the RSS of each of them, so the sum of
RSS overstates the tree; PSS (``/proc/<pid>/smaps_rollup``) splits each
shared page between its users, so the PSS of the processes adds up to what
the tree really holds.

Example:
    $ python -m kpipe.local.triton.memory 12345           # one reading
    $ python -m kpipe.local.triton.memory 12345 --for 60  # peaks over a minute
    role                  pid    rss_mb  pss_mb  anon_mb  shmem_mb  hwm_mb
    launcher            12345      31.0    18.2     14.1       0.0    31.0
    ...
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import click

from kpipe.local.triton.bundled import STUB_NAME

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessMemory:
    """One process of the launcher's tree: its role and memory in KiB.

    ``role`` is ``launcher``, ``tritonserver``, ``stub:<model>`` or the
    program's name. ``pss_anon_kib`` is the process's share of its private
    and copy-on-write memory (heap, arenas, tensors); ``pss_shmem_kib`` its
    share of shared memory (``/dev/shm``); the rest of PSS is mapped files.
    """

    role: str
    pid: int
    rss_kib: int
    pss_kib: int
    pss_anon_kib: int
    pss_shmem_kib: int
    hwm_kib: int


def _children(pid: int) -> list[int]:
    found = []
    for task in (_PROC / str(pid) / "task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def tree(root: int) -> list[int]:
    """``root`` and every process below it, parents first."""
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop(0)
        found.append(pid)
        frontier += _children(pid)
    return found


def _fields(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) >= 1 and parts[0].isdigit():
            values[key] = int(parts[0])
    return values


def argv(pid: int) -> list[str]:
    """The command line of ``pid`` (empty once it has exited)."""
    try:
        return os.fsdecode((_PROC / str(pid) / "cmdline").read_bytes()).split("\0")[:-1]
    except OSError:
        return []


def role(pid: int, root: int) -> str:
    """What ``pid`` is in the launcher's tree (see :class:`ProcessMemory`)."""
    if pid == root:
        return "launcher"
    args = argv(pid)
    program = os.path.basename(args[0]) if args else "?"
    if program == STUB_NAME and len(args) > 1:
        # The stub's first argument is <repository>/<model>/<version>/model.py.
        return f"stub:{Path(args[1]).parent.parent.name}"
    return program


def process_memory(pid: int, root: int) -> ProcessMemory | None:
    """The memory of one process, or None once it has exited."""
    rollup = _fields(_PROC / str(pid) / "smaps_rollup")
    status = _fields(_PROC / str(pid) / "status")
    if not rollup or not status:
        return None
    return ProcessMemory(
        role=role(pid, root),
        pid=pid,
        rss_kib=status.get("VmRSS", 0),
        pss_kib=rollup.get("Pss", 0),
        pss_anon_kib=rollup.get("Pss_Anon", 0),
        pss_shmem_kib=rollup.get("Pss_Shmem", 0),
        hwm_kib=status.get("VmHWM", 0),
    )


def triton_memory(root: int) -> list[ProcessMemory]:
    """Every live process of the launcher tree under ``root``, parents first.

    Args:
        root: the pid of ``python -m kpipe.local.triton.server``.

    Returns:
        One entry per process; the sum of ``pss_kib`` is the tree's memory.
    """
    found = [process_memory(pid, root) for pid in tree(root)]
    return [m for m in found if m is not None]


@dataclass
class Peaks:
    """The largest PSS seen per role, and of the whole tree at one sample, in KiB."""

    by_role: dict[str, int]
    tree_pss_kib: int = 0
    tree_rss_kib: int = 0
    samples: int = 0

    def add(self, rows: list[ProcessMemory]) -> None:
        """Count one sample of :func:`triton_memory`."""
        totals: dict[str, int] = {}
        for m in rows:
            totals[m.role] = totals.get(m.role, 0) + m.pss_kib
        for name, kib in totals.items():
            self.by_role[name] = max(self.by_role.get(name, 0), kib)
        self.tree_pss_kib = max(self.tree_pss_kib, sum(m.pss_kib for m in rows))
        self.tree_rss_kib = max(self.tree_rss_kib, sum(m.rss_kib for m in rows))
        self.samples += 1


def sample_peaks(root: int, seconds: float, every_s: float = 0.2) -> Peaks:
    """Sample the tree under ``root`` for ``seconds`` (or until it exits); the peaks seen."""
    peaks = Peaks(by_role={})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (rows := triton_memory(root)):
        peaks.add(rows)
        time.sleep(every_s)
    return peaks


def _mb(kib: int) -> str:
    return f"{kib / 1024:.1f}"


@click.command()
@click.argument("pid", type=int)
@click.option(
    "--for",
    "seconds",
    type=float,
    default=0.0,
    help="Sample this long (every 0.2 s) and print the peaks instead of one reading.",
)
def main(pid: int, seconds: float) -> None:
    """Print the memory of the local Triton launcher PID and of each process below it."""
    if seconds > 0:
        peaks = sample_peaks(pid, seconds)
        click.echo(f"{'role':<24}{'peak_pss_mb':>12}")
        for name, kib in sorted(peaks.by_role.items()):
            click.echo(f"{name:<24}{_mb(kib):>12}")
        click.echo(
            f"tree peak: PSS {_mb(peaks.tree_pss_kib)} MB, sum of RSS "
            f"{_mb(peaks.tree_rss_kib)} MB ({peaks.samples} samples)"
        )
        return
    rows = triton_memory(pid)
    click.echo(
        f"{'role':<24}{'pid':>8}{'rss_mb':>9}{'pss_mb':>9}{'anon_mb':>9}{'shmem_mb':>10}"
        f"{'hwm_mb':>9}"
    )
    for m in rows:
        click.echo(
            f"{m.role:<24}{m.pid:>8}{m.rss_kib / 1024:>9.1f}{m.pss_kib / 1024:>9.1f}"
            f"{m.pss_anon_kib / 1024:>9.1f}{m.pss_shmem_kib / 1024:>10.1f}{m.hwm_kib / 1024:>9.1f}"
        )
    click.echo(
        f"{'total':<24}{'':>8}{sum(m.rss_kib for m in rows) / 1024:>9.1f}"
        f"{sum(m.pss_kib for m in rows) / 1024:>9.1f}"
    )


if __name__ == "__main__":
    main()
