"""The inference client: one protocol, and the real Triton implementation.

Parts that run on Triton (detect_text, detect_objects) talk to it only
through :class:`InferenceClient`, so the same part code serves a GPU Triton
in the cluster and the CPU Triton of ``kpipe up``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from functions.errors import InferenceFailed, ModelNotReady

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kpipe.settings import InferenceSettings


class InferenceClient(Protocol):
    """Runs one inference request on a named model."""

    url: str

    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        traceparent: str | None = None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        """Run ``model`` on ``inputs`` and return the named ``outputs``.

        Raises:
            ModelNotReady: Triton is unreachable or the model is not loaded,
                after the bounded wait of the client's retry policy.
            InferenceFailed: Triton rejected the request.
        """
        ...

    def close(self) -> None: ...


# Backoff between readiness probes while Triton is down or still loading the
# model: quick at first (a Triton that is starting is ready within seconds),
# never more than a second apart so the bound is kept closely.
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0


class _NotReady(Exception):
    """Internal: this attempt found Triton unreachable or the model not loaded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TritonInferenceClient:
    """:class:`InferenceClient` over Triton's HTTP API (KServe v2) with binary tensors.

    One retry policy: while Triton is unreachable or the model is not ready,
    the call probes again with exponential backoff until ``ready_wait_s``
    have passed since it began, then raises :class:`ModelNotReady`. A request
    Triton rejects raises :class:`InferenceFailed` at once. Readiness is
    checked before the first request of each model and remembered until a
    request fails. Not thread-safe: use one client per thread.

    Example:
        >>> with TritonInferenceClient("127.0.0.1:8000") as client:
        ...     out = client.infer("text_detection", {"x": batch}, ["sigmoid_0.tmp_0"])
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        ready_wait_s: float = 10.0,
        connection_timeout_s: float | None = None,
    ) -> None:
        """Open a client (no request is made until the first call).

        Args:
            url: ``host:port`` of Triton's HTTP endpoint (an ``http://`` or
                ``https://`` prefix is accepted).
            timeout_s: network timeout of one request (send and receive).
            ready_wait_s: how long one call keeps retrying an unreachable
                Triton or a model that is not ready.
            connection_timeout_s: TCP connect timeout; by default the smaller
                of ``timeout_s`` and ``max(ready_wait_s, 1)``, so a black-holed
                address cannot stretch the readiness bound much.
        """
        from tritonclient.http import InferenceServerClient

        self.url = url
        self.ready_wait_s = ready_wait_s
        secure = url.startswith("https://")
        host = url.split("://", 1)[1] if "://" in url else url
        if connection_timeout_s is None:
            connection_timeout_s = min(timeout_s, max(ready_wait_s, 1.0))
        self._client = InferenceServerClient(
            host.rstrip("/"),
            ssl=secure,
            connection_timeout=connection_timeout_s,
            network_timeout=timeout_s,
        )
        self._ready: set[str] = set()

    @classmethod
    def from_settings(cls, settings: InferenceSettings | None = None) -> TritonInferenceClient:
        """A client configured from TRITON_URL, TRITON_TIMEOUT_S and TRITON_READY_WAIT_S."""
        from kpipe.settings import InferenceSettings

        # Fields come from the environment (mypy without the pydantic plugin cannot see that).
        s = settings if settings is not None else InferenceSettings()
        return cls(s.url, timeout_s=s.timeout_s, ready_wait_s=s.ready_wait_s)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        traceparent: str | None = None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        """Run ``model`` on ``inputs`` and return the named ``outputs``.

        Args:
            model: the Triton model name.
            inputs: one array per input tensor, shaped as the model expects
                (with the batch dimension when the model batches).
            outputs: the output tensor names to return.
            traceparent: W3C trace context, sent as the ``traceparent`` header.

        Returns:
            One array per requested output.

        Raises:
            ModelNotReady: Triton stayed unreachable or the model not ready for
                ``ready_wait_s``.
            InferenceFailed: Triton rejected the request.
        """
        headers = {"traceparent": traceparent} if traceparent else None
        deadline = time.monotonic() + self.ready_wait_s
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                self._check_ready(model, headers)
                return self._infer_once(model, inputs, outputs, headers)
            except _NotReady as exc:
                self._ready.discard(model)
                reason = exc.reason
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelNotReady(model, self.url, reason)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def close(self) -> None:
        """Close the connection pool; later calls fail."""
        self._client.close()

    def __enter__(self) -> TritonInferenceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_ready(self, model: str, headers: dict[str, str] | None) -> None:
        if model in self._ready:
            return
        if not self._probe(model, headers):
            raise _NotReady("the model is not loaded")
        self._ready.add(model)

    def _probe(self, model: str, headers: dict[str, str] | None) -> bool:
        """Whether Triton says ``model`` is ready (_NotReady when Triton cannot be reached)."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._client.is_model_ready(model, headers=headers))
        except _transport_errors() as exc:
            raise _NotReady(f"unreachable: {exc}") from None
        except InferenceServerException as exc:
            raise _NotReady(str(exc.message())) from None

    def _infer_once(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        headers: dict[str, str] | None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        from tritonclient.http import InferInput, InferRequestedOutput
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        request = []
        for name, array in inputs.items():
            tensor = InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=True)
            request.append(tensor)
        wanted = [InferRequestedOutput(name, binary_data=True) for name in outputs]
        try:
            result = self._client.infer(model, request, outputs=wanted, headers=headers)
        except _transport_errors() as exc:
            raise _NotReady(f"unreachable: {exc}") from None
        except InferenceServerException as exc:
            # A model unloaded since the readiness check is "not ready", not a bad request.
            if not self._probe(model, headers):
                raise _NotReady("the model is not loaded") from None
            raise InferenceFailed(f"{model} on {self.url}: {exc.message()}") from None
        arrays = {}
        for name in outputs:
            array = result.as_numpy(name)
            if array is None:
                raise InferenceFailed(f"{model} on {self.url}: no output {name!r} in the response")
            arrays[name] = array
        return arrays


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What geventhttpclient raises when Triton cannot be reached or stops answering."""
    from http.client import HTTPException

    from gevent import Timeout

    return (OSError, HTTPException, Timeout)
