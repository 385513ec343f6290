"""The local broker that keeps Knative's data-plane contract on one machine."""

from __future__ import annotations

from eventing.broker.app import create_broker_app
from eventing.broker.core import Broker
from eventing.broker.errors import BrokerBusy, InvalidBrokerConfig
from eventing.broker.triggers import (
    BrokerConfig,
    DeliverySpec,
    Trigger,
    load_config,
    write_config,
)

__all__ = [
    "Broker",
    "BrokerBusy",
    "BrokerConfig",
    "DeliverySpec",
    "InvalidBrokerConfig",
    "Trigger",
    "create_broker_app",
    "load_config",
    "write_config",
]
