"""Errors raised by the eventing package."""

from __future__ import annotations

from kpipe.core.errors import KpipeError


class EventingError(KpipeError):
    """Root of the eventing package's errors."""

    code = "eventing_error"


class MalformedEvent(EventingError, ValueError):
    """A request is not a valid kpipe CloudEvent; the receiver answers 400."""

    code = "malformed_event"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MalformedNotification(EventingError, ValueError):
    """A bucket notification body is not an S3 event record set; answered 400."""

    code = "malformed_notification"


class DeliveryFailed(EventingError):
    """The broker did not accept an event after the retry policy ran out."""

    code = "delivery_failed"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
