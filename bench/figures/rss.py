"""Figure 6: ``peak_rss_mb`` -- peak resident memory of each process of the stack.

Sampled from /proc during figures 1-3 by :class:`bench._procs.RssSampler`:
per component the sum of the VmHWM (lifetime peak) of its processes (a part
is a gunicorn master and its worker; Triton is the launcher, tritonserver and
its Python stubs), and for the whole stack the largest sampled sum of VmRSS.
"""

from __future__ import annotations

from bench._procs import MIB, RssSampler
from bench.model import Figure, Goal
from kpipe.stack import PARTS


def figure(sampler: RssSampler) -> Figure:
    """The figure from a finished sampler."""
    rows = list(sampler.by_component())
    value: dict[str, float | None] = {name: total for name, total, _, _ in rows}
    value["stack"] = sampler.stack_peak_kib / MIB
    heavy = [
        f"{n} {t:.0f} MB in {c} processes (largest {m:.0f} MB)"
        for n, t, m, c in rows
        if (n in PARTS and t > 200) or t > 500
    ]
    return Figure(
        key="peak_rss_mb",
        value=value,
        goals=[Goal(f"peak_rss_mb.{p}", "<=", 200.0, "MB") for p in PARTS if p in value]
        + [Goal("peak_rss_mb.stack", "<=", 2048.0, "MB")],
        method=(
            f"/proc sampled every {sampler.interval_s} s ({sampler.samples} samples) during "
            "figures 1-3 (and 5 when it runs): per component the sum of its processes' VmHWM; "
            "stack = the largest sampled sum of VmRSS over every process under kpipe up. "
            "RSS counts shared libraries in every process that maps them."
        ),
        details={
            "components": {
                n: {"sum_of_peaks_mb": t, "largest_process_mb": m, "processes": c}
                for n, t, m, c in rows
            },
            "sum_of_all_peaks_mb": sum(t for _, t, _, _ in rows),
        },
        obstacles=heavy,
    )
