"""The router's Prometheus metrics, served at ``/metrics``.

Counters count what this replica saw; runs by status and the queue depth
(step requests with no answer yet) are read from the shared store at scrape
time, so every replica reports the same, true figures.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventing.contract import Event, EventType, StepCompleted, StepFailed
from functions.metrics import step_duration, step_failures
from router.state import RunStatus
from router.store import Store


class _StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily("kpipe_runs", "Runs by status", labels=["status"])
        counts = self._store.count_runs_by_status()
        for status in RunStatus:
            runs.add_metric([status.value], counts.get(status, 0))
        yield runs
        yield GaugeMetricFamily(
            "kpipe_queue_depth",
            "Step requests sent and not answered yet",
            value=self._store.count_requested_steps(),
        )
        outbox = GaugeMetricFamily(
            "kpipe_outbox_events",
            "Events in the outbox: waiting for the relay, refused by the broker for good, "
            "kept as answers a redelivery gets again",
            labels=["state"],
        )
        for state, count in self._store.count_outbox().items():
            outbox.add_metric([state], count)
        yield outbox


class RouterMetrics:
    """Events in and out, step latency and failures as the router learns of them, runs."""

    def __init__(self, registry: CollectorRegistry, store: Store) -> None:
        self.events_in = Counter(
            "kpipe_events_in", "Events delivered to the router", ["type"], registry=registry
        )
        self.events_out = Counter(
            "kpipe_events_out", "Events the router emitted", ["type"], registry=registry
        )
        self.reconciled = Counter(
            "kpipe_runs_reconciled",
            "Runs the reconciler started because the upload's notification was lost",
            ["pipeline"],
            registry=registry,
        )
        self.step_seconds = step_duration(registry, "Step durations as reported by the parts")
        self.cpu_seconds = Counter(
            "kpipe_step_cpu_seconds",
            "CPU time the parts' steps used, as they measured it",
            ["pipeline", "function"],
            registry=registry,
        )
        self.inference_seconds = Counter(
            "kpipe_step_inference_seconds",
            "Time the parts' steps waited for Triton, as they measured it",
            ["pipeline", "function"],
            registry=registry,
        )
        self.failures = step_failures(registry)
        registry.register(_StoreCollector(store))

    def observe_in(self, event: Event) -> None:
        self.events_in.labels(event.type.value).inc()
        function = event.context.function if event.context else ""
        if event.type is EventType.STEP_COMPLETED:
            done = StepCompleted.from_data(event.data)
            self.step_seconds.labels(function).observe(done.duration_ms / 1000.0)
            pipeline = event.context.pipeline if event.context else ""
            if done.cpu_ms is not None:
                self.cpu_seconds.labels(pipeline, function).inc(done.cpu_ms / 1000.0)
            if done.inference_ms is not None:
                self.inference_seconds.labels(pipeline, function).inc(done.inference_ms / 1000.0)
        elif event.type is EventType.STEP_FAILED:
            self.failures.labels(function, StepFailed.from_data(event.data).code).inc()

    def observe_out(self, events: list[Event]) -> None:
        for event in events:
            self.events_out.labels(event.type.value).inc()
