"""Everything the router's HTTP app uses, created, started and closed in one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventing.contract import BucketScope, Event
from eventing.errors import DeliveryFailed
from eventing.objectstore import MinioStore, split_endpoint
from eventing.oidc import OIDCSettings, OIDCVerifier
from eventing.signing import SigningKey, SigningSettings, TrustedKeys
from eventing.sink import BrokerClient, HttpBrokerClient
from functions.part import Part
from kpipe.core.telemetry import Telemetry
from router.backfill import Backfills
from router.engine import Router
from router.errors import PipelineNotFound, Unavailable
from router.health import HealthChecker
from router.metrics import RouterMetrics
from router.outbox import Relay
from router.reconciler import Reconciler
from router.settings import RouterSettings
from router.spec import PipelineSpec
from router.state import RunState
from router.store import Store
from router.sweeper import Sweeper
from router.views import RunOut

log = logging.getLogger(__name__)


class Sink(BrokerClient, Protocol):
    """The broker client the router owns: it sends, and it is closed with the router."""

    def close(self) -> None: ...


class Catalog(Protocol):
    """What the router needs of the parts catalogue."""

    def names(self) -> list[str]: ...

    def get(self, name: str) -> Part: ...

    def describe(self) -> list[dict[str, Any]]: ...


@dataclass
class RouterServices:
    """The router's collaborators, with one owner for their lifecycle."""

    settings: RouterSettings
    store: Store
    catalog: Catalog
    health: HealthChecker
    sink: Sink | None = None
    objects: MinioStore | None = None
    telemetry: Telemetry = field(default_factory=lambda: Telemetry("kpipe-router"))
    # The keys whose signatures events must carry (eventing/signing.py), the
    # router's own key for what it sends, and the broker's OIDC token check.
    trusted: TrustedKeys = field(default_factory=lambda: TrustedKeys({}))
    signer: SigningKey | None = None
    oidc: OIDCVerifier | None = None
    # The buckets the parts read uploads from and write into: specs are held to them.
    scope: BucketScope = field(default_factory=BucketScope.from_settings)
    router: Router = field(init=False)
    sweeper: Sweeper = field(init=False)
    backfills: Backfills = field(init=False)
    metrics: RouterMetrics = field(init=False)
    relay: Relay = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = RouterMetrics(self.telemetry.registry, self.store)
        copier = self.objects.copy if self.objects is not None else None
        self.router = Router(
            self.store, copier, self.settings.redrive_after_s, self._reads_upstream
        )
        self.relay = Relay(self.store, self.send)
        self.backfills = Backfills(self.store, self.router, self.flush)
        reconciler = None
        if self.objects is not None:
            reconciler = Reconciler(
                self.store,
                self.router,
                self.objects,
                self.flush,
                interval_s=self.settings.reconcile_interval_s,
                grace_s=self.settings.reconcile_grace_s,
                lookback_s=self.settings.reconcile_lookback_s,
                on_started=lambda pipeline: self.metrics.reconciled.labels(pipeline).inc(),
            )
        self.sweeper = Sweeper(
            self.store,
            self.router,
            self.flush,
            interval_s=self.settings.sweep_interval_s,
            redrive_after_s=self.settings.redrive_after_s,
            deadline_s=self.settings.run_deadline_s,
            backfills=self.backfills,
            reconciler=reconciler,
        )

    def start(self) -> None:
        self.relay.start()
        self.sweeper.start()

    def close(self) -> None:
        self.sweeper.stop()
        self.relay.stop()
        self.backfills.stop()
        self.health.close()
        if self.sink is not None:
            self.sink.close()
        if self.objects is not None:
            self.objects.close()
        self.telemetry.close()
        self.store.close()

    def sign(self, event: Event) -> Event:
        """``event`` signed with the router's key (as it is when no key is configured)."""
        return self.signer.sign(event) if self.signer is not None else event

    def _reads_upstream(self, function: str) -> bool:
        """Whether ``function``'s part reads its upstream metadata (True for one not known)."""
        try:
            return self.catalog.get(function).reads_upstream
        except LookupError:
            return True

    def flush(self) -> None:
        """Post what the outbox holds now, in this thread (the relay retries what fails)."""
        self.relay.drain()

    def send(self, event: Event) -> None:
        """Sign an event and post it to the broker (``K_SINK``); the relay's only way out.

        Raises:
            DeliveryFailed: no broker is configured, or it refused the event.
        """
        if self.sink is None:
            raise DeliveryFailed(f"K_SINK is not set; cannot send {event.type}")
        self.sink.send(self.sign(event))
        self.metrics.observe_out([event])

    def object_store(self) -> MinioStore:
        """The object store. Raises Unavailable when none is configured."""
        if self.objects is None:
            raise Unavailable("no object store is configured (MINIO_ENDPOINT)")
        return self.objects

    def registered_specs(self) -> list[PipelineSpec]:
        """The active spec of every registered pipeline."""
        return [stored.spec for stored in self.store.list_pipelines()]

    def used_buckets(self) -> set[str]:
        """Buckets some registered pipeline reads or writes: the only ones the API serves."""
        found: set[str] = set()
        for spec in self.registered_specs():
            found |= {spec.trigger.bucket, spec.output.bucket}
        return found

    def run_view(self, run: RunState) -> RunOut:
        try:
            spec = self.store.get_pipeline(run.pipeline, run.version).spec
        except PipelineNotFound:
            spec = None
        return RunOut.of(run, spec)


def services_from_env(settings: RouterSettings | None = None) -> RouterServices:
    """The real services, configured from the environment (as in a cluster or `kpipe up`)."""
    from functions.catalog import default_catalog
    from kpipe.core.settings import EventSettings, InferenceSettings, ObjectStoreSettings
    from router.health import http_check

    settings = settings or RouterSettings()
    events = EventSettings()
    objects = ObjectStoreSettings()
    signing = SigningSettings()
    signer = signing.key()
    if signer is None:
        raise RuntimeError("KPIPE_SIGNING_KEY is not set: parts refuse unsigned step requests")
    store = Store(settings.database())
    endpoint, secure = split_endpoint(objects)
    scheme = "https" if secure else "http"
    triton = InferenceSettings().url
    triton = triton if "://" in triton else f"http://{triton}"
    checks = {
        "database": store.ping,
        "object-store": http_check(f"{scheme}://{endpoint}/minio/health/live"),
        "triton": http_check(f"{triton}/v2/health/ready"),
    }
    checks.update({name: http_check(url) for name, url in settings.health_targets().items()})
    return RouterServices(
        settings=settings,
        store=store,
        catalog=default_catalog(),
        health=HealthChecker(checks),
        sink=HttpBrokerClient.from_settings(events) if events.sink else None,
        objects=MinioStore(objects),
        trusted=signing.trusted(),
        signer=signer,
        # Only a router that receives events checks the broker's tokens; the
        # public API replica has no audience of its own (deploy/knative/base/router.yaml).
        oidc=OIDCVerifier.from_settings(OIDCSettings()) if settings.serves != "api" else None,
    )
