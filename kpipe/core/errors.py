"""The root of every error kpipe raises on purpose."""

from __future__ import annotations


class KpipeError(Exception):
    """Base class for kpipe's own errors.

    Each package derives its own root from this one (``EventingError``,
    ``ObjectStoreError``, ``RouterError``, ``StepError``) so a caller can
    catch one package's failures without catching a programming error.
    """

    code: str = "internal"
    # Whether the same request could succeed later (a server kpipe depends on
    # is down for now): a part answers such a failure 503 so the broker
    # redelivers, a client may try again.
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
