"""The inference client: one protocol, and the real Triton implementation.

Parts that run on Triton (detect_text, detect_objects) talk to it only
through :class:`InferenceClient`, so the same part code serves a GPU Triton
in the cluster and the CPU Triton of ``kpipe up``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from functions.errors import InferenceFailed, ModelNotReady
from kpipe.core.retry import Backoff, retrying

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kpipe.core.settings import InferenceSettings

log = logging.getLogger(__name__)


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
            ModelNotReady: Triton is unreachable, silent, or does not serve
                the model (retryable: the step is redelivered later).
            InferenceFailed: Triton rejected the request.
        """
        ...

    def close(self) -> None: ...


class TimedInference:
    """An inference client that adds the time each call waits for Triton to ``waited_s``.

    One per step (functions/step.py), so a step reports the inference time it used.
    """

    def __init__(self, client: InferenceClient) -> None:
        self._client = client
        self.url = client.url
        self.waited_s = 0.0

    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        traceparent: str | None = None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        began = time.perf_counter()
        try:
            return self._client.infer(model, inputs, outputs, traceparent)
        finally:
            self.waited_s += time.perf_counter() - began

    def close(self) -> None:
        """Nothing: the client it wraps belongs to the runtime."""


# A connection Triton reset or closed under the client (Triton restarted, or
# dropped an idle keep-alive) is tried again at once, a few times: the next
# connection usually works. Nothing else is retried here: a Triton that is
# down, does not answer the probe, or lacks the model fails the step at once
# as retryable, and the part asks the broker to redeliver it later
# (functions.delivery), so no worker waits for Triton.
_RESET_BACKOFF = Backoff(initial_s=0.05, factor=2.0, max_s=0.2)
_RESET_ATTEMPTS = 3


class _NotReady(Exception):
    """Internal: Triton is unreachable, silent, or does not serve the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Reset(_NotReady):
    """Internal: the connection was reset or closed under us; worth another try."""


class TritonInferenceClient:
    """:class:`InferenceClient` over Triton's HTTP API (KServe v2) with binary tensors.

    Each call first asks Triton whether the model is ready, with the short
    ``probe_timeout_s``, then runs the request with ``timeout_s``. Triton
    down, silent or without the model raises :class:`ModelNotReady` at once
    (retryable: the broker redelivers the step); a request whose connection
    is reset is made up to three times in all, with kpipe's retry policy. A request Triton
    rejects raises :class:`InferenceFailed`. Not thread-safe: use one client
    per thread.

    Example:
        >>> with TritonInferenceClient("127.0.0.1:8000") as client:  # doctest: +SKIP
        ...     out = client.infer("text_detection", {"x": batch}, ["sigmoid_0.tmp_0"])
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        probe_timeout_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Open a client (no request is made until the first call).

        Args:
            url: ``host:port`` of Triton's HTTP endpoint (an ``http://`` or
                ``https://`` prefix is accepted).
            timeout_s: network timeout of one inference request.
            probe_timeout_s: connect timeout, and the whole timeout of the
                readiness probe: how long a call waits to learn that Triton
                is down or stopped.
            sleep: waits between retries of a reset connection (for tests).
        """
        from tritonclient.http import InferenceServerClient

        self.url = url
        self.timeout_s = timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._sleep = sleep
        secure = url.startswith("https://")
        host = (url.split("://", 1)[1] if "://" in url else url).rstrip("/")
        self._client = InferenceServerClient(
            host,
            ssl=secure,
            connection_timeout=min(timeout_s, probe_timeout_s),
            network_timeout=timeout_s,
        )
        # Its own connection and short timeouts: a stopped Triton accepts TCP
        # connections (the kernel does) but never answers.
        self._probe_client = InferenceServerClient(
            host, ssl=secure, connection_timeout=probe_timeout_s, network_timeout=probe_timeout_s
        )

    @classmethod
    def from_settings(cls, settings: InferenceSettings | None = None) -> TritonInferenceClient:
        """A client configured from TRITON_URL, TRITON_TIMEOUT_S and TRITON_PROBE_TIMEOUT_S."""
        from kpipe.core.settings import InferenceSettings

        # Fields come from the environment (mypy without the pydantic plugin cannot see that).
        s = settings if settings is not None else InferenceSettings()
        return cls(s.url, timeout_s=s.timeout_s, probe_timeout_s=s.probe_timeout_s)

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
            ModelNotReady: Triton is unreachable, did not answer, or does not
                serve the model (retryable).
            InferenceFailed: Triton rejected the request.
        """
        headers = {"traceparent": traceparent} if traceparent else None
        policy = retrying(
            f"{model} on Triton at {self.url}",
            _RESET_BACKOFF,
            attempts=_RESET_ATTEMPTS,
            on_exception=(_Reset,),
            sleep=self._sleep,
            logger=log,
        )
        try:
            result: dict[str, npt.NDArray[np.generic]] = policy(
                self._attempt, model, inputs, outputs, headers
            )
        except _NotReady as exc:
            raise ModelNotReady(model, self.url, exc.reason) from None
        return result

    def close(self) -> None:
        """Close the connection pools; later calls fail."""
        self._client.close()
        self._probe_client.close()

    def __enter__(self) -> TritonInferenceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _attempt(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[np.generic]],
        outputs: list[str],
        headers: dict[str, str] | None,
    ) -> dict[str, npt.NDArray[np.generic]]:
        if not self._probe(model, headers):
            raise _NotReady("the model is not loaded")
        return self._infer_once(model, inputs, outputs, headers)

    def _probe(self, model: str, headers: dict[str, str] | None) -> bool:
        """Whether Triton says ``model`` is ready (_NotReady when it cannot tell)."""
        from tritonclient.utils import InferenceServerException

        with _transport_errors(self.probe_timeout_s):
            try:
                return bool(self._probe_client.is_model_ready(model, headers=headers))
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
            with _transport_errors(self.timeout_s):
                result = self._client.infer(model, request, outputs=wanted, headers=headers)
        except InferenceServerException as exc:
            # A model unloaded since the probe is "not ready", not a bad request.
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


@contextmanager
def _transport_errors(timeout_s: float) -> Iterator[None]:
    """Turn what geventhttpclient raises when Triton is gone into _Reset or _NotReady."""
    from http.client import HTTPException

    from gevent import Timeout
    from geventhttpclient.response import HTTPConnectionClosed

    try:
        yield
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
        raise _Reset(f"connection reset: {exc}") from None
    except HTTPConnectionClosed as exc:
        raise _Reset(f"connection closed: {exc}") from None
    except (TimeoutError, Timeout):
        raise _NotReady(f"unreachable: no answer within {timeout_s:g} s") from None
    except (OSError, HTTPException) as exc:
        raise _NotReady(f"unreachable: {exc}") from None
