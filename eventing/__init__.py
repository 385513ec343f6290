"""kpipe's eventing: the event contract, its HTTP binding, signatures and the one S3 client.

Servers and clients live in their own modules (``eventing.sink``, the broker
client; ``eventing.adapter``, the MinIO webhook adapter;
``eventing.objectstore``, the S3 client); import them from there so that
importing the contract stays light. The local broker and S3 server are the
tools' (:mod:`kpipe.local`).
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
