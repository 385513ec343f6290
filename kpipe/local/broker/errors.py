"""Errors of the local broker."""

from __future__ import annotations

from eventing.errors import EventingError


class InvalidBrokerConfig(EventingError, ValueError):
    """The triggers file is not valid; ``where`` names the trigger or field."""

    code = "invalid_broker_config"

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


class BrokerBusy(EventingError):
    """A trigger's queue is full; the ingress answers 503 so the sender retries."""

    code = "broker_busy"

    def __init__(self, trigger: str) -> None:
        super().__init__(f"the queue of trigger {trigger!r} is full")
        self.trigger = trigger
