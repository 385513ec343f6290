"""Errors a step can end with; each becomes a ``step.failed`` event.

``code`` is the machine-readable error code in the event; ``retryable`` says
whether the same request could succeed later. A retryable error (Triton
unreachable, a model not loaded, or the object store's
:class:`~eventing.objectstore.StoreUnavailable`) is answered 503 so the broker
redelivers, while the request is younger than ``KPIPE_RETRY_FOR_S``; after
that, and for every other error, the answer is a ``step.failed`` event
(see :mod:`functions.delivery`).
"""

from __future__ import annotations

from kpipe.core.errors import KpipeError


class StepError(KpipeError):
    """Root of the errors a part raises while running a step.

    A step also ends with the object store's errors
    (:class:`~eventing.objectstore.ObjectStoreError`): both carry ``code`` and
    ``retryable``.
    """

    code = "step_error"


class OutOfScope(KpipeError, PermissionError):
    """A signed request that names, or would write, an object outside its run; answered 403.

    Not a step error: the part answers it without an event, as it does a
    request it cannot trust (the broker then dead-letters it, and the router
    fails the run with why).
    """

    code = "out_of_scope"


class PartBusy(KpipeError):
    """Every step slot of the part is taken; answered 429, and the broker retries later."""

    code = "part_busy"


class BadParams(StepError, ValueError):
    """The step's params do not fit the part's schema."""

    code = "bad_params"

    def __init__(self, function: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{function}: {message}")
        self.field = field


class BadImage(StepError, ValueError):
    """An input object is not an image kpipe can decode."""

    code = "bad_image"

    def __init__(self, ref: object, reason: str) -> None:
        super().__init__(f"{ref} is not a usable image: {reason}")
        self.ref = ref
        self.reason = reason


class ImageTooLarge(BadImage):
    """An image declares more pixels than the configured limit (a decompression bomb)."""

    code = "image_too_large"


class ModelNotReady(StepError):
    """Triton is down, silent or does not serve the model a part needs; the delivery is retried."""

    code = "model_not_ready"
    retryable = True

    def __init__(self, model: str, url: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"model {model} not ready on Triton at {url}{detail}")
        self.model = model
        self.url = url


class InferenceFailed(StepError):
    """Triton answered an inference request with an error."""

    code = "inference_failed"
