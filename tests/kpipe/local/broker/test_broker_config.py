"""Trigger config, filters and ISO-8601 durations of the local broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kpipe.local.broker import (
    BrokerConfig,
    DeliverySpec,
    InvalidBrokerConfig,
    Trigger,
    load_config,
    write_config,
)
from kpipe.local.broker._duration import format_duration, parse_duration
from kpipe.local.broker.delivery import RetryPolicy

STEP = {"type": "io.kpipe.step.requested", "kpipefunction": "resize", "source": "/router"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT0.2S", 0.2),
        ("PT30S", 30),
        ("PT1M30S", 90),
        ("PT2H", 7200),
        ("P1D", 86400),
        ("P1W", 604800),
    ],
)
def test_parses_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "0.2", "P1Y", "P1M", "PT-1S", "2s"])
def test_refuses_other_durations(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("trigger", "matches"),
    [
        (Trigger("t", "u", {"type": "io.kpipe.step.requested"}), True),
        (Trigger("t", "u", {"type": "io.kpipe.step.requested", "kpipefunction": "blur"}), False),
        (Trigger("t", "u", {"type": "", "kpipefunction": "resize"}), True),
        (Trigger("t", "u", {"missing": "x"}), False),
        (Trigger("t", "u"), True),
        (Trigger("t", "u", {"type": "x"}, ({"prefix": {"type": "io.kpipe."}},)), True),
        (Trigger("t", "u", filters=({"suffix": {"type": ".requested"}},)), True),
        (Trigger("t", "u", filters=({"suffix": {"nope": ""}},)), False),
        (Trigger("t", "u", filters=({"not": {"exact": {"kpipefunction": "resize"}}},)), False),
        (
            Trigger(
                "t",
                "u",
                filters=({"any": [{"exact": {"type": "a"}}, {"exact": {"source": "/router"}}]},),
            ),
            True,
        ),
        (
            Trigger(
                "t",
                "u",
                filters=({"all": [{"exact": {"type": "a"}}, {"exact": {"source": "/router"}}]},),
            ),
            False,
        ),
    ],
)
def test_filters(trigger: Trigger, matches: bool) -> None:
    assert trigger.matches(STEP) is matches


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trips_through_a_file(tmp_path: Path, suffix: str) -> None:
    triggers = [
        Trigger("router", "http://127.0.0.1:1/", {"type": "io.kpipe.object.created"}),
        Trigger(
            "fn-resize",
            "http://127.0.0.1:2/",
            filters=({"exact": {"type": "io.kpipe.step.requested", "kpipefunction": "resize"}},),
            delivery=DeliverySpec(retry=2, dead_letter_sink="http://127.0.0.1:3/"),
        ),
    ]
    written = write_config(tmp_path / f"t{suffix}", triggers, DeliverySpec(backoff_delay_s=0.05))
    loaded = load_config(tmp_path / f"t{suffix}")
    assert loaded == written
    assert loaded.delivery.backoff_delay_s == 0.05
    assert loaded.delivery.retry == 5  # from the defaults
    policy = RetryPolicy.from_spec(loaded.triggers[1].delivery.over(loaded.delivery))
    assert (policy.retry, policy.dead_letter_sink) == (2, "http://127.0.0.1:3/")


def test_reads_the_documented_yaml_and_knative_manifests(tmp_path: Path) -> None:
    path = tmp_path / "triggers.yaml"
    path.write_text(
        """
delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.5S, timeout: PT10S,
           deadLetterSink: {uri: "http://127.0.0.1:9/dls"}}
triggers:
  - name: router
    filter: {attributes: {type: io.kpipe.object.created}}
    subscriber: {uri: "http://127.0.0.1:7/"}
  - apiVersion: eventing.knative.dev/v1
    kind: Trigger
    metadata: {name: fn-resize}
    spec:
      broker: default
      filter: {attributes: {type: io.kpipe.step.requested, kpipefunction: resize}}
      subscriber: {uri: "http://127.0.0.1:8/"}
"""
    )
    config = load_config(path)
    assert [t.name for t in config.triggers] == ["router", "fn-resize"]
    assert config.delivery == DeliverySpec(3, "linear", 0.5, 10.0, "http://127.0.0.1:9/dls")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"triggers": [{"subscriber": {"uri": "u"}}]}, "needs a name"),
        ({"triggers": [{"name": "a"}]}, "subscriber needs a uri"),
        ({"triggers": [{"name": "a", "subscriber": {"ref": {}}}]}, "subscriber needs a uri"),
        (
            {"triggers": [{"name": "a", "subscriber": {"uri": "u"}, "filters": [{"cesql": "x"}]}]},
            "cesql",
        ),
        (
            {"triggers": [{"name": "a", "subscriber": {"uri": "u"}, "filters": [{"bogus": {}}]}]},
            "unknown",
        ),
        (
            {"triggers": [{"name": "a", "subscriber": {"uri": "u"}, "filters": [{"exact": {}}]}]},
            "non-empty",
        ),
        ({"delivery": {"backoffDelay": "soon"}}, "ISO-8601"),
        ({"delivery": {"backoffPolicy": "random"}}, "exponential or linear"),
        ({"delivery": {"retry": -1}}, "negative"),
        ({"delivery": {"deadLetterSink": {"ref": {}}}}, "deadLetterSink needs a uri"),
        ({"triggers": [{"name": "a", "subscriber": {"uri": "u"}}] * 2}, "duplicate"),
        ({"ttl": 0}, "ttl"),
        ([], "mapping"),
    ],
)
def test_invalid_configs_say_why(data: Any, message: str) -> None:
    with pytest.raises(InvalidBrokerConfig, match=message):
        BrokerConfig.from_dict(data)


@pytest.mark.parametrize(
    ("policy", "delays"),
    [("exponential", [0.2, 0.4, 0.8]), ("linear", [0.1, 0.2, 0.3])],
)
def test_backoff_policies(policy: str, delays: list[float]) -> None:
    retry = RetryPolicy(3, policy, 0.1, 1.0)
    assert [retry.delay(n) for n in (1, 2, 3)] == pytest.approx(delays)
