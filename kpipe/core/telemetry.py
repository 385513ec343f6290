"""Traces and metrics of one kpipe process: a tracer and a Prometheus registry it owns.

Spans follow the W3C ``traceparent`` that rides in every event, so one run
is one trace across the router, the parts and Triton. Spans are exported
only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is
set, then over OTLP/HTTP; otherwise they are created and dropped.

Example:
    >>> telemetry = Telemetry("kpipe-router")
    >>> with telemetry.span("route", None) as traceparent:
    ...     traceparent.startswith("00-")
    True
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_PROPAGATOR = TraceContextTextMapPropagator()
_OTLP_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

Attributes = Mapping[str, str | int | float | bool]


class Telemetry:
    """The tracer provider and metrics registry of one process, with an explicit lifecycle."""

    def __init__(self, service: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.registry = CollectorRegistry()
        self._provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.exporting = any(env.get(name) for name in _OTLP_VARS)
        if self.exporting:
            # Imported only when configured: the exporter pulls in protobuf and requests.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("kpipe")

    @contextmanager
    def span(
        self, name: str, traceparent: str | None, attributes: Attributes | None = None
    ) -> Iterator[str]:
        """A span that continues ``traceparent``; yields the span's own traceparent.

        Pass the yielded value on (to Triton, or in the next event) so the
        next hop becomes this span's child.
        """
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with self._tracer.start_as_current_span(
            name, context=parent, attributes=dict(attributes or {})
        ) as current:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
            yield carrier.get("traceparent", traceparent or "")

    def metrics(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this process's registry, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Flush and stop the span exporter, if any."""
        self._provider.shutdown()
