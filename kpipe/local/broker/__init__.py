"""The local broker that keeps Knative's data-plane contract on one machine."""

from __future__ import annotations

from kpipe.local.broker.app import create_broker_app
from kpipe.local.broker.core import Broker
from kpipe.local.broker.errors import BrokerBusy, InvalidBrokerConfig
from kpipe.local.broker.triggers import (
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
