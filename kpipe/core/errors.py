"""The root of every error kpipe raises on purpose."""

from __future__ import annotations


class KpipeError(Exception):
    """Base class for kpipe's own errors.

    Each package derives its own root from this one (``EventingError``,
    ``RouterError``, ``StepError``) so a caller can catch one package's
    failures without catching a programming error.
    """

    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
