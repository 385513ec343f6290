"""``python -m bench``: start the local stack, measure the figures, write the report.

Example:
    $ python -m bench --quick --out /tmp/bench      # a smoke run, about 2 minutes
    $ python -m bench --only hop_latency_ms --only peak_rss_mb
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from bench import report
from bench._procs import RssSampler
from bench._stack import running_stack
from bench.context import Context
from bench.figures import cold_start, events, hops, overhead, rss, triton_batching
from bench.model import Figure
from bench.photos import real_photos, tiny_png

# In run order: the routed figures while memory is sampled, then the others.
SAMPLED: dict[str, Callable[[Context], Figure]] = {
    "overhead_ratio": overhead.measure,
    "hop_latency_ms": hops.measure,
    "events_per_s": events.measure,
    "triton_batching_gain": triton_batching.measure,
}
UNSAMPLED: dict[str, Callable[[Context], Figure]] = {"cold_start_s": cold_start.measure}
NAMES = [*SAMPLED, *UNSAMPLED, "peak_rss_mb"]


def run(out: Path, quick: bool, only: tuple[str, ...] = ()) -> Path:
    """Measure the figures named in ``only`` (all by default); the path of latest.json."""
    wanted = set(only or NAMES)
    started = time.perf_counter()
    photo_count = 8 if quick else 50
    needs_photos = wanted & {"overhead_ratio", "triton_batching_gain"}
    photos = real_photos(photo_count if needs_photos else 1)
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="kpipe-bench-") as tmp,
        running_stack(Path(tmp) / "home") as stack,
    ):
        ctx = Context(quick, Path(tmp), stack, photos, tiny_png())
        with RssSampler(stack.pid) as sampler:
            for name, measure in SAMPLED.items():
                if name in wanted:
                    click.echo(f"bench: {name} ...", err=True)
                    figures.append(measure(ctx))
        for name, measure in UNSAMPLED.items():
            if name in wanted:
                click.echo(f"bench: {name} ...", err=True)
                figures.append(measure(ctx))
    if "peak_rss_mb" in wanted:
        figures.append(rss.figure(sampler))
    return report.write(out, figures, quick, time.perf_counter() - started)


@click.command()
@click.option("--quick", is_flag=True, help="A short smoke run (fewer photos, runs and parts).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
    help="Folder for latest.json and latest.md.",
)
@click.option("--only", multiple=True, type=click.Choice(NAMES), help="Measure only these.")
def main(quick: bool, out: Path, only: tuple[str, ...]) -> None:
    """Benchmark kpipe against its goals (issue 6) and write the report."""
    path = run(out, quick, only)
    click.echo(path.with_suffix(".md").read_text())
    click.echo(f"wrote {path} and {path.with_suffix('.md')}", err=True)


if __name__ == "__main__":
    main()
