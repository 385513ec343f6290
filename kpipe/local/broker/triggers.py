"""Triggers and delivery specs in Knative's own shape, and their config file.

The file (YAML or JSON) the local broker reads::

    delivery:                      # the Broker's spec.delivery: defaults for all
      retry: 5
      backoffPolicy: exponential   # or linear
      backoffDelay: PT0.2S         # ISO-8601
      timeout: PT30S
      deadLetterSink: {uri: http://127.0.0.1:8099/}
    triggers:                      # each a Trigger's spec plus its name
      - name: router
        filter: {attributes: {type: io.kpipe.object.created}}
        subscriber: {uri: http://127.0.0.1:8090/}
      - name: fn-resize
        filters: [{exact: {type: io.kpipe.step.requested, kpipefunction: resize}}]
        subscriber: {uri: http://127.0.0.1:8091/}
        delivery: {retry: 3}

A whole Knative ``Trigger`` manifest (``kind: Trigger``, ``metadata.name``,
``spec``) is accepted as an item too. A trigger's delivery fields that are not
set fall back to the broker's, field by field (Knative does the same for the
dead-letter sink).

Example:
    >>> t = Trigger("router", "http://127.0.0.1:8090/", {"type": "io.kpipe.object.created"})
    >>> t.matches({"type": "io.kpipe.object.created", "source": "/s3"})
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpipe.local.broker._duration import format_duration, parse_duration
from kpipe.local.broker.errors import InvalidBrokerConfig
from kpipe.local.broker.filters import check_filter, matches_all

DEFAULT_TTL = 255  # Knative's initial knativebrokerttl


@dataclass(frozen=True)
class DeliverySpec:
    """Knative's ``spec.delivery``; None fields inherit from the broker's spec."""

    retry: int | None = None
    backoff_policy: str | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None
    dead_letter_sink: str | None = None

    def __post_init__(self) -> None:
        if self.retry is not None and self.retry < 0:
            raise InvalidBrokerConfig("retry must not be negative", "delivery.retry")
        if self.backoff_policy not in (None, "exponential", "linear"):
            raise InvalidBrokerConfig(
                f"backoffPolicy must be exponential or linear, not {self.backoff_policy!r}",
                "delivery.backoffPolicy",
            )
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidBrokerConfig("timeout must be greater than 0", "delivery.timeout")

    def over(self, default: DeliverySpec) -> DeliverySpec:
        """This spec with its unset fields taken from ``default``."""
        return DeliverySpec(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(self._values(), default._values(), strict=True)
            )
        )

    def _values(self) -> tuple[Any, ...]:
        return (
            self.retry,
            self.backoff_policy,
            self.backoff_delay_s,
            self.timeout_s,
            self.dead_letter_sink,
        )

    def to_dict(self) -> dict[str, Any]:
        """The camelCase YAML form, with ISO-8601 durations; unset fields left out."""
        out: dict[str, Any] = {}
        if self.retry is not None:
            out["retry"] = self.retry
        if self.backoff_policy is not None:
            out["backoffPolicy"] = self.backoff_policy
        if self.backoff_delay_s is not None:
            out["backoffDelay"] = format_duration(self.backoff_delay_s)
        if self.timeout_s is not None:
            out["timeout"] = format_duration(self.timeout_s)
        if self.dead_letter_sink is not None:
            out["deadLetterSink"] = {"uri": self.dead_letter_sink}
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "delivery") -> DeliverySpec:
        """Parse the YAML form; InvalidBrokerConfig if it is wrong."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidBrokerConfig("must be a mapping", where)
        retry = data.get("retry")
        if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool)):
            raise InvalidBrokerConfig("retry must be an integer", where)
        sink = data.get("deadLetterSink")
        if sink is not None and not (
            isinstance(sink, Mapping) and isinstance(sink.get("uri"), str)
        ):
            raise InvalidBrokerConfig("deadLetterSink needs a uri (refs are not resolved)", where)
        try:
            return cls(
                retry=retry,
                backoff_policy=data.get("backoffPolicy"),
                backoff_delay_s=_duration(data.get("backoffDelay")),
                timeout_s=_duration(data.get("timeout")),
                dead_letter_sink=sink["uri"] if sink is not None else None,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidBrokerConfig(str(exc), where) from None


def _duration(value: Any) -> float | None:
    return None if value is None else parse_duration(str(value))


# What Knative's brokers do when nothing is configured, with a retry added:
# without one a local run would lose an event on the first hiccup.
DEFAULT_DELIVERY = DeliverySpec(
    retry=5, backoff_policy="exponential", backoff_delay_s=0.2, timeout_s=30.0
)


@dataclass(frozen=True)
class Trigger:
    """One Knative Trigger: a filter, a subscriber URI and a delivery spec.

    Args:
        name: the trigger's name (unique in a config).
        subscriber: the subscriber's absolute URI.
        attributes: the legacy ``filter.attributes`` (exact match; "" matches any).
        filters: the new ``filters`` expressions; when set they replace ``attributes``.
        delivery: per-trigger delivery overrides.
        concurrency: deliveries in flight to this subscriber at once (the
            broker's default when None); a kpipe extension, set to a part's
            ``containerConcurrency`` so no delivery queues inside the part.
    """

    name: str
    subscriber: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    filters: tuple[Mapping[str, Any], ...] = ()
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    concurrency: int | None = None

    def matches(self, attributes: Mapping[str, str]) -> bool:
        """True if an event with these context attributes passes the filter."""
        if self.filters:
            return matches_all(self.filters, attributes)
        return all(
            value == "" or attributes.get(name) == value for name, value in self.attributes.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (a Trigger's spec plus ``name``)."""
        out: dict[str, Any] = {"name": self.name}
        if self.attributes:
            out["filter"] = {"attributes": dict(self.attributes)}
        if self.filters:
            out["filters"] = [dict(f) for f in self.filters]
        out["subscriber"] = {"uri": self.subscriber}
        delivery = self.delivery.to_dict()
        if delivery:
            out["delivery"] = delivery
        if self.concurrency is not None:
            out["concurrency"] = self.concurrency
        return out

    @classmethod
    def from_dict(cls, data: Any, index: int = 0) -> Trigger:
        """Parse one trigger item (or a whole ``kind: Trigger`` manifest)."""
        if not isinstance(data, Mapping):
            raise InvalidBrokerConfig("must be a mapping", f"triggers[{index}]")
        if data.get("kind") == "Trigger":
            data = {"name": (data.get("metadata") or {}).get("name"), **(data.get("spec") or {})}
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidBrokerConfig("needs a name", f"triggers[{index}]")
        subscriber = data.get("subscriber")
        if not isinstance(subscriber, Mapping) or not isinstance(subscriber.get("uri"), str):
            raise InvalidBrokerConfig("subscriber needs a uri (refs are not resolved)", name)
        attributes = ((data.get("filter") or {}).get("attributes")) or {}
        if not isinstance(attributes, Mapping) or not all(
            isinstance(v, str) for v in attributes.values()
        ):
            raise InvalidBrokerConfig("filter.attributes must map names to strings", name)
        filters = data.get("filters") or []
        if not isinstance(filters, list):
            raise InvalidBrokerConfig("filters must be a list", name)
        for expression in filters:
            check_filter(expression, name)
        concurrency = data.get("concurrency")
        if concurrency is not None and (
            not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
        ):
            raise InvalidBrokerConfig("concurrency must be a positive integer", name)
        return cls(
            name=name,
            subscriber=subscriber["uri"],
            attributes={str(k): v for k, v in attributes.items()},
            filters=tuple(filters),
            delivery=DeliverySpec.from_dict(data.get("delivery"), f"{name}.delivery"),
            concurrency=concurrency,
        )


@dataclass(frozen=True)
class BrokerConfig:
    """The broker's triggers, its default delivery spec and its TTL."""

    triggers: tuple[Trigger, ...] = ()
    delivery: DeliverySpec = DEFAULT_DELIVERY
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        names = [t.name for t in self.triggers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidBrokerConfig(f"duplicate trigger names {duplicates}", "triggers")
        if self.ttl < 1:
            raise InvalidBrokerConfig("ttl must be at least 1", "ttl")

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery.to_dict(),
            "ttl": self.ttl,
            "triggers": [t.to_dict() for t in self.triggers],
        }

    @classmethod
    def from_dict(cls, data: Any) -> BrokerConfig:
        if not isinstance(data, Mapping):
            raise InvalidBrokerConfig("the config must be a mapping")
        triggers = data.get("triggers") or []
        if not isinstance(triggers, list):
            raise InvalidBrokerConfig("must be a list", "triggers")
        ttl = data.get("ttl", DEFAULT_TTL)
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            raise InvalidBrokerConfig("must be an integer", "ttl")
        return cls(
            triggers=tuple(Trigger.from_dict(t, i) for i, t in enumerate(triggers)),
            delivery=DeliverySpec.from_dict(data.get("delivery")).over(DEFAULT_DELIVERY),
            ttl=ttl,
        )


def load_config(path: str | Path) -> BrokerConfig:
    """Read a triggers file (YAML, or JSON which is YAML too).

    Raises:
        InvalidBrokerConfig: the file is not valid YAML or not a valid config.
        OSError: the file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidBrokerConfig(f"not valid YAML: {exc}", str(path)) from None
    return BrokerConfig.from_dict(data or {})


def write_config(
    path: str | Path,
    triggers: Iterable[Trigger],
    default_delivery: DeliverySpec | None = None,
    ttl: int = DEFAULT_TTL,
) -> BrokerConfig:
    """Write a triggers file that :func:`load_config` reads back (JSON if ``.json``).

    Args:
        path: where to write; the suffix picks JSON or YAML.
        triggers: the triggers.
        default_delivery: the broker-level delivery spec (default: DEFAULT_DELIVERY).
        ttl: the initial knativebrokerttl.

    Returns:
        The config written.
    """
    config = BrokerConfig(
        tuple(triggers), (default_delivery or DeliverySpec()).over(DEFAULT_DELIVERY), ttl
    )
    target = Path(path)
    if target.suffix == ".json":
        text = json.dumps(config.to_dict(), indent=2) + "\n"
    else:
        text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    target.write_text(text, encoding="utf-8")
    return config
