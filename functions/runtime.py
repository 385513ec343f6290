"""What running a step needs, and its per-process lifecycle.

A :class:`StepRuntime` bundles the object store, the catalogue, the inference
client factory and the image limits. :class:`ProcessRuntime` builds one from
the environment on first use and keeps it for the life of the process, so a
warm Knative pod reuses its connections.

Example:
    >>> runtime = ProcessRuntime()  # reads nothing yet
    >>> runtime.get().images.max_pixels  # doctest: +SKIP
    50000000
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventing.contract import BucketScope
from eventing.objectstore import MinioStore, ObjectStore
from eventing.oidc import OIDCSettings, OIDCVerifier
from eventing.signing import Role, SigningKey, SigningSettings, TrustedKeys
from functions.catalog import Catalog, default_catalog

if TYPE_CHECKING:
    from functions._asgi import Admission
from functions.inference import InferenceClient
from functions.metrics import PartMetrics
from kpipe.core.settings import (
    DeliverySettings,
    ImageSettings,
    InferenceSettings,
    ObjectStoreSettings,
)
from kpipe.core.telemetry import Telemetry


@dataclass(frozen=True)
class StepRuntime:
    """The services a step runs with."""

    store: ObjectStore
    catalog: Catalog
    images: ImageSettings
    # Opens (or reuses) an inference client; None where no part needs one.
    inference: Callable[[], InferenceClient] | None = None
    # Traces and metrics; None in tests that do not look at them.
    telemetry: Telemetry | None = None
    metrics: PartMetrics | None = None
    # How long a retryable failure asks the broker for redelivery (KPIPE_RETRY_FOR_S).
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    # Whose signatures a request must carry (the router's), and the key replies are
    # signed with; with no trusted key every request is refused.
    trusted: TrustedKeys = field(default_factory=lambda: TrustedKeys({}))
    signer: SigningKey | None = None
    # Checks the broker's OIDC token when the cluster's issuer is configured.
    oidc: OIDCVerifier | None = None
    # The buckets a step may read sources from and write into (KPIPE_*_BUCKETS).
    scope: BucketScope = field(default_factory=BucketScope)


class PerThreadInference:
    """An inference-client factory that gives each thread its own Triton client.

    The Triton HTTP client is not thread-safe, and a part runs its steps on
    asyncio's pool of worker threads; each thread's client is opened on its first
    AI step and reused after that.
    """

    def __init__(self, settings: InferenceSettings) -> None:
        self._settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[InferenceClient] = []

    def __call__(self) -> InferenceClient:
        client: InferenceClient | None = getattr(self._local, "client", None)
        if client is None:
            # Imported here: tritonclient is only loaded by AI steps.
            from functions.inference import TritonInferenceClient

            client = TritonInferenceClient.from_settings(self._settings)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every thread's client."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


class ProcessRuntime:
    """The process's :class:`StepRuntime`, built from env vars on first use.

    Reads ``MINIO_ENDPOINT``, ``MINIO_ACCESS_KEY``, ``MINIO_SECRET_KEY``,
    ``MINIO_SECURE``, ``MINIO_REGION``, ``MINIO_TIMEOUT_S`` (the store),
    ``TRITON_URL``, ``TRITON_TIMEOUT_S``, ``TRITON_PROBE_TIMEOUT_S`` (AI
    steps), ``KPIPE_MAX_PIXELS`` (image limit), ``KPIPE_RETRY_FOR_S`` (how
    long retryable failures are redelivered), ``KPIPE_SIGNING_KEY`` (the
    parts' key, which signs the answers), ``KPIPE_TRUSTED_KEYS`` (the router's
    public key, which must have signed a request) and ``KPIPE_OIDC_*`` (the
    broker's token check, see :mod:`eventing.oidc`).
    """

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog
        # Built at import so /metrics answers before the first step.
        self.telemetry = Telemetry("kpipe-functions")
        self.metrics = PartMetrics(self.telemetry.registry)
        self._lock = threading.Lock()
        self._runtime: StepRuntime | None = None
        self._store: MinioStore | None = None
        self._inference: PerThreadInference | None = None
        self._admission: Admission | None = None

    def admission(self) -> Admission:
        """The part's step slots (``KPIPE_PART_CONCURRENCY``), made on first use."""
        if self._admission is None:
            from functions._asgi import Admission

            self._admission = Admission(DeliverySettings().concurrency)
        return self._admission

    def get(self) -> StepRuntime:
        """The runtime, built on the first call.

        Raises:
            pydantic.ValidationError: An env var has an invalid value.
            eventing.signing.BadKey: KPIPE_SIGNING_KEY or KPIPE_TRUSTED_KEYS is not valid.
            RuntimeError: KPIPE_SIGNING_KEY is not set (the router would
                refuse every answer), or no router key is trusted.
        """
        runtime = self._runtime
        if runtime is not None:
            return runtime
        with self._lock:
            if self._runtime is None:
                signing = SigningSettings()
                signer, trusted = signing.key(), signing.trusted()
                if signer is None:
                    raise RuntimeError("KPIPE_SIGNING_KEY is not set: parts sign their answers")
                if not trusted.has(Role.ROUTER):
                    raise RuntimeError("KPIPE_TRUSTED_KEYS has no router key to check requests")
                self._store = MinioStore(ObjectStoreSettings())
                self._inference = PerThreadInference(InferenceSettings())
                self._runtime = StepRuntime(
                    store=self._store,
                    catalog=self._catalog or default_catalog(),
                    images=ImageSettings(),
                    inference=self._inference,
                    telemetry=self.telemetry,
                    metrics=self.metrics,
                    delivery=DeliverySettings(),
                    trusted=trusted,
                    signer=signer,
                    oidc=OIDCVerifier.from_settings(OIDCSettings()),
                    scope=BucketScope.from_settings(),
                )
            return self._runtime

    def close(self) -> None:
        """Close the store's connections and the inference clients."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            if self._inference is not None:
                self._inference.close()
            self._runtime = self._store = self._inference = None
        self.telemetry.close()
