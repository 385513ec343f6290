"""Process trees and memory from /proc (psutil is not a kpipe dependency).

Example:
    >>> peak_kib(os.getpid()) > 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
MIB = 1024.0


def _ppid(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop(0)
        found.append(pid)
        frontier += sorted(children.get(pid, []))
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB; (0, 0) once it has exited."""
    rss = hwm = 0
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def peak_kib(pid: int) -> int:
    """The peak resident set (VmHWM) of ``pid`` in KiB."""
    return memory_kib(pid)[1]


def argv(pid: int) -> list[str]:
    """The command line of ``pid`` (empty once it has exited)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def function_target(pid: int) -> str | None:
    """The part a process serves: its ``FUNCTION_TARGET`` (None if it has none or exited)."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(b"FUNCTION_TARGET="):
            return entry.split(b"=", 1)[1].decode(errors="replace")
    return None


def component(args: list[str], pid: int | None = None) -> str:
    """The stack component a ``kpipe up`` child runs, from its command line.

    A part (``python -m functions --target <part>``, or
    ``functions-framework --target <part>``) is named by its command line;
    one served as ``uvicorn functions_framework.aio:app`` by its
    ``FUNCTION_TARGET``, read from ``pid``'s environment.
    """
    if "--target" in args:
        return args[args.index("--target") + 1]
    if pid is not None and (target := function_target(pid)):
        return target
    if "-m" in args:
        module = args[args.index("-m") + 1]
        names = {
            "router": "router",
            "kpipe.local.broker": "broker",
            "eventing.adapter": "adapter",
            "kpipe.local.s3.server": "s3",
            "kpipe.local.triton.server": "triton",
        }
        return names.get(module, module)
    return os.path.basename(args[0]) if args else "?"


def owner(root: int, pid: int) -> str:
    """The component of the tree under ``root`` that ``pid`` belongs to."""
    if pid == root:
        return "supervisor"
    chain = [pid]
    while (parent := _ppid(chain[-1])) not in (None, root, 0, 1):
        chain.append(parent)
    return component(argv(chain[-1]), chain[-1])


@dataclass
class RssSampler:
    """Samples the memory of a process tree (``kpipe up`` and below) on a thread.

    Per component (a direct child of the root, with its own children) it keeps
    the sum of its processes' VmHWM (their lifetime peaks) and the largest one;
    for the whole tree, the largest sampled sum of VmRSS (a simultaneous peak).
    """

    root: int
    interval_s: float = 0.25
    hwm_kib: dict[int, int] = field(default_factory=dict)
    owner: dict[int, str] = field(default_factory=dict)
    stack_peak_kib: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one sample now."""
        total = 0
        for pid in descendants(self.root):
            rss, hwm = memory_kib(pid)
            total += rss
            self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), hwm)
            if pid not in self.owner:
                self.owner[pid] = self._owner(pid)
        self.stack_peak_kib = max(self.stack_peak_kib, total)
        self.samples += 1

    def _owner(self, pid: int) -> str:
        return owner(self.root, pid)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def by_component(self) -> Iterator[tuple[str, float, float, int]]:
        """(component, sum of peaks MiB, largest process peak MiB, processes), by name."""
        names = sorted(set(self.owner.values()))
        for name in names:
            peaks = [self.hwm_kib[p] for p, o in self.owner.items() if o == name]
            yield name, sum(peaks) / MIB, max(peaks) / MIB, len(peaks)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 once it has exited)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # After the command name: state is field 3, so utime (14) and stime (15) are [11], [12].
    return (int(fields[11]) + int(fields[12])) / _TICKS


def runqueue_wait_s(pid: int) -> float:
    """Seconds the threads of ``pid`` have waited for a CPU while runnable (schedstat).

    The second field of ``/proc/<pid>/task/<tid>/schedstat``, summed over the
    threads alive now; 0 once the process has exited.
    """
    total_ns = 0
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total_ns += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total_ns / 1e9


def label(root: int, pid: int) -> str:
    """:func:`owner`, with the program's name added for a helper that is not Python.

    So ``rclone`` under the S3 server reads ``s3/rclone`` and Triton's server
    ``triton/tritonserver``; a part's worker stays its part's name.
    """
    name = owner(root, pid)
    args = argv(pid)
    program = os.path.basename(args[0]) if args else ""
    if pid == root or not program or program.startswith("python"):
        return name
    return f"{name}/{program}"


@dataclass(frozen=True)
class Usage:
    """CPU used and time spent waiting for a CPU, in seconds."""

    cpu_s: float = 0.0
    wait_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s + other.cpu_s, self.wait_s + other.wait_s)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s - other.cpu_s, self.wait_s - other.wait_s)


def usage(pid: int) -> Usage:
    """CPU and run-queue wait of one process so far."""
    return Usage(cpu_s(pid), runqueue_wait_s(pid))


def usage_by_label(root: int) -> dict[str, Usage]:
    """:class:`Usage` so far of each :func:`label` of the tree under ``root``."""
    totals: dict[str, Usage] = {}
    for pid in descendants(root):
        name = label(root, pid)
        totals[name] = totals.get(name, Usage()) + usage(pid)
    return totals


def usage_delta(before: dict[str, Usage], after: dict[str, Usage]) -> dict[str, Usage]:
    """Per label, what was used between two readings, most CPU first."""
    delta = {k: v - before.get(k, Usage()) for k, v in after.items()}
    return dict(sorted(delta.items(), key=lambda kv: -kv[1].cpu_s))


def cpu_by_component(root: int) -> dict[str, float]:
    """CPU seconds used so far by each component of the tree under ``root``."""
    totals: dict[str, float] = {}
    for pid in descendants(root):
        name = owner(root, pid)
        totals[name] = totals.get(name, 0.0) + cpu_s(pid)
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per component between two :func:`cpu_by_component` readings, largest first."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    return dict(sorted(delta.items(), key=lambda kv: -kv[1]))


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (from /proc/stat), all cores."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS
