from __future__ import annotations

import pytest

from kpipe.core.telemetry import Telemetry

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_span_continues_the_runs_trace() -> None:
    telemetry = Telemetry("test", env={})
    with telemetry.span("step resize", PARENT, {"kpipe.run": "r1"}) as child:
        version, trace_id, span_id, flags = child.split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span_id != "b7ad6b7169203331"
    telemetry.close()


def test_a_span_without_a_parent_starts_a_trace() -> None:
    telemetry = Telemetry("test", env={})
    with telemetry.span("route", None) as child:
        assert child.startswith("00-")
        assert len(child.split("-")[1]) == 32
    telemetry.close()


@pytest.mark.parametrize(
    ("env", "exporting"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, True),
    ],
)
def test_the_exporter_is_off_unless_configured(env: dict[str, str], exporting: bool) -> None:
    telemetry = Telemetry("test", env=env)
    assert telemetry.exporting is exporting
    telemetry.close()


def test_metrics_are_prometheus_text() -> None:
    from prometheus_client import Counter

    telemetry = Telemetry("test", env={})
    Counter("kpipe_things", "things", registry=telemetry.registry).inc(3)
    body, content_type = telemetry.metrics()
    assert content_type.startswith("text/plain")
    assert b"kpipe_things_total 3.0" in body
