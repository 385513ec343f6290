"""``python -m bench``: start the local stack, measure the figures, write the report.

Example:
    $ python -m bench --quick --out /tmp/bench      # a smoke run, a few minutes
    $ python -m bench --only hop_latency_ms --only peak_rss_mb
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench import report
from bench._procs import RssSampler
from bench._stack import running_stack
from bench.context import PEER_REDIS, Context
from bench.figures import (
    chains,
    cold_start,
    face_quality,
    hops,
    overhead,
    requests,
    rss,
    triton_batching,
)
from bench.figures._every_part import work_every_part
from bench.model import Figure
from bench.photos import real_photos, tiny_png

Measure = Callable[[Context], list[Figure]]


def _one(measure: Callable[[Context], Figure]) -> Measure:
    """A figure module's ``measure`` as a measurement that yields a list of figures."""
    return lambda ctx: [measure(ctx)]


_CHAINS: Measure = chains.measure
# Figure name -> its measurement, in run order: the routed figures while memory
# is sampled (then the workout that makes every part work), then the others.
# One measurement may yield several figures (chain_step_ms and
# chain_steps_per_s are measured side by side).
SAMPLED: dict[str, Measure] = {
    "overhead_ratio": _one(overhead.measure),
    "hop_latency_ms": _one(hops.measure),
    "chain_step_ms": _CHAINS,
    "chain_steps_per_s": _CHAINS,
    "triton_batching_gain": _one(triton_batching.measure),
    "face_quality": _one(face_quality.measure),  # needs the stack's Triton
}
_REQUESTS: Measure = requests.measure
UNSAMPLED: dict[str, Measure] = {
    "cold_start_s": _one(cold_start.measure),
    # In this process, no stack: request sizes, and the router's CPU per hop.
    "request_bytes": _REQUESTS,
    "router_cpu_ms": _REQUESTS,
}
NAMES = [*SAMPLED, *UNSAMPLED, "peak_rss_mb"]
PHOTOS = {"overhead_ratio", "triton_batching_gain", "peak_rss_mb"}


def _measure_all(
    registry: dict[str, Measure],
    wanted: set[str],
    ctx: Context,
    done: list[Measure],
    info: report.RunInfo,
) -> list[Figure]:
    """Run each wanted measurement once (several names may share one), in order.

    A measurement that fails is noted (with its error) and the others still run.
    """
    figures: list[Figure] = []
    for name, measure in registry.items():
        if name in wanted and measure not in done:
            _settle(ctx, name, info)
            click.echo(f"bench: {name} ...", err=True)
            done.append(measure)
            began = time.perf_counter()
            try:
                figures += measure(ctx)
            except Exception as exc:  # one broken figure must not lose the others
                traceback.print_exc()
                info.notes.append(f"{name} was not measured: {type(exc).__name__}: {exc}"[:500])
            info.durations_s[name] = time.perf_counter() - began
    return figures


def _settle(ctx: Context, name: str, info: report.RunInfo) -> None:
    """Let the work of what ran before (redeliveries included) finish; note it when it did not."""
    waited, left = ctx.stack.settle()
    if waited >= 1.0:
        click.echo(f"bench: waited {waited:.0f} s for the stack to finish its work", err=True)
    if left:
        info.notes.append(
            f"{name} started beside earlier work the stack had not finished after "
            f"{waited:.0f} s ({left} deliveries or steps in progress)."
        )


def run(out: Path, quick: bool, only: tuple[str, ...] = (), peer_redis: str = PEER_REDIS) -> Path:
    """Measure the figures named in ``only`` (all by default); the path of latest.json."""
    wanted = set(only or NAMES)
    started = time.perf_counter()
    info = report.RunInfo(quick, load_at_start=report.load_average())
    photo_count = 4 if quick else 50
    photos = real_photos(photo_count if wanted & PHOTOS else 1)
    figures: list[Figure] = []
    done: list[Measure] = []
    workout: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="kpipe-bench-") as tmp,
        running_stack(Path(tmp) / "home") as stack,
    ):
        ctx = Context(quick, Path(tmp), stack, photos, tiny_png(), peer_redis)
        with RssSampler(stack.pid) as sampler:
            figures += _measure_all(SAMPLED, wanted, ctx, done, info)
            # Last in the window: its heavy AI work must not run beside the timed figures.
            if "peak_rss_mb" in wanted:
                _settle(ctx, "the workout of peak_rss_mb", info)
                click.echo("bench: peak_rss_mb: every part at work ...", err=True)
                began = time.perf_counter()
                workout = work_every_part(ctx, 3 if quick else 6)
                info.durations_s["peak_rss_mb workout"] = time.perf_counter() - began
        sampled = [f.key for f in figures]
        figures += _measure_all(UNSAMPLED, wanted, ctx, done, info)
    if "peak_rss_mb" in wanted:
        figures.append(rss.figure(sampler, workout, sampled))
    info.elapsed_s = time.perf_counter() - started
    return report.write(out, figures, info)


@click.command()
@click.option("--quick", is_flag=True, help="A short smoke run (fewer photos, runs and parts).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
    help="Folder for latest.json and latest.md.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(NAMES),
    help="Measure only these (chain_step_ms and chain_steps_per_s come together).",
)
@click.option(
    "--peer-redis",
    envvar="KPIPE_BENCH_REDIS_URL",
    default=PEER_REDIS,
    show_default=True,
    help="Redis of the Celery peer (broker and results); unreachable: the peer is not measured.",
)
def main(quick: bool, out: Path, only: tuple[str, ...], peer_redis: str) -> None:
    """Benchmark kpipe against its goals (issues 6 and 9) and write the report."""
    path = run(out, quick, only, peer_redis)
    click.echo(path.with_suffix(".md").read_text())
    click.echo(f"wrote {path} and {path.with_suffix('.md')}", err=True)


if __name__ == "__main__":
    main()
