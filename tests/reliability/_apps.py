"""In-process apps of each receiver: the router, the broker, the adapter and the parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from eventing.signing import Role, part_principal
from eventing.sink import HttpBrokerClient
from functions.catalog import Catalog
from kpipe.core.retry import Backoff
from kpipe.local.config import PARTS
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.functions.apps import part_client
from tests.router.apps import KEYS, TRUSTED

TARGETS = PARTS
__all__ = ["PART_ENV", "TARGETS", "part_client", "router_client", "router_services"]
# What a part process gets from `kpipe up` (or its Secret): its key and the router's.
PART_ENV = {
    # One test part serves every target: it signs as resize, the first.
    "KPIPE_SIGNING_KEY": KEYS[part_principal("resize")].entry(),
    "KPIPE_TRUSTED_KEYS": f"router={KEYS[Role.ROUTER].public_entry()}",
}


def router_services(
    home: Path, catalog: Catalog, sink_url: str | None = None, **settings: Any
) -> RouterServices:
    """Router services on an SQLite file in ``home``; events go to ``sink_url`` if given."""
    config = RouterSettings(KPIPE_HOME=home, **settings)
    store = Store(config.database())
    sink = (
        HttpBrokerClient(sink_url, timeout_s=5, retries=1, backoff=Backoff(0.01))
        if sink_url
        else None
    )
    return RouterServices(
        settings=config,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping}),
        sink=sink,
        trusted=TRUSTED,
        signer=KEYS[Role.ROUTER],
    )


def router_client(home: Path, catalog: Catalog, **settings: Any) -> TestClient:
    return TestClient(create_app(router_services(home, catalog, **settings)))
