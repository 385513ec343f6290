"""kpipe's eventing: the event contract, its HTTP binding, and the local servers.

Servers and clients live in their own modules (``eventing.sink``,
``eventing.adapter``, ``kpipe.local.broker``, ``kpipe.local.s3.server``); import them
from there so that importing the contract stays light.
"""

from __future__ import annotations

from eventing.contract import Event, EventType, ObjectCreated, ObjectRef
from eventing.errors import DeliveryFailed, EventingError, MalformedEvent, MalformedNotification

__all__ = [
    "DeliveryFailed",
    "Event",
    "EventType",
    "EventingError",
    "MalformedEvent",
    "MalformedNotification",
    "ObjectCreated",
    "ObjectRef",
]
