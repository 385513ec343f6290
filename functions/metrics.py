"""The Prometheus metrics of a part process, served at ``/metrics`` on every part."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Steps take from milliseconds (resize of a thumbnail) to seconds (OCR on a CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def step_duration(registry: CollectorRegistry, documentation: str) -> Histogram:
    """The step latency histogram; the router and the parts share its name and buckets."""
    return Histogram(
        "kpipe_step_duration_seconds",
        documentation,
        ["function"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )


def step_failures(registry: CollectorRegistry) -> Counter:
    """Failed steps by function and error code (the same series on router and parts)."""
    return Counter(
        "kpipe_step_failures",
        "Failed steps by error code",
        ["function", "code"],
        registry=registry,
    )


class PartMetrics:
    """Events in and out, step latency, failures by code and steps in flight."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_in = Counter(
            "kpipe_events_in", "Events delivered to this part", ["function"], registry=registry
        )
        self.events_out = Counter(
            "kpipe_events_out",
            "Events this part answered with, by type",
            ["function", "type"],
            registry=registry,
        )
        self.step_seconds = step_duration(
            registry, "Time to run a step: fetch, decode, run, encode, store"
        )
        self.failures = step_failures(registry)
        self.in_flight = Gauge(
            "kpipe_steps_in_flight",
            "Steps running now (this part's queue depth)",
            ["function"],
            registry=registry,
        )
